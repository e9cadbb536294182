"""The classical baselines: bicubic (the papers' protocol) and the colour guided filter."""

import cv2
from depth_sr_ros.baselines import BicubicUpsampler, guided_filter, GuidedFilterUpsampler
from depth_sr_ros.data.degradations import bicubic_downsample, crop_to_multiple
from depth_sr_ros.metrics import mae
import numpy as np
import pytest


def test_bicubic_is_plain_opencv_bicubic_on_valid_depth(cones):
    truth = crop_to_multiple(cones['depth'], 4)
    lr = bicubic_downsample(truth, 4)
    out = BicubicUpsampler(4)(lr, crop_to_multiple(cones['rgb'], 4))
    expected = cv2.resize(lr, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_guided_filter_keeps_a_constant_and_snaps_to_a_colour_edge():
    guide = np.zeros((64, 64, 3), np.float32)
    guide[:, 32:] = 1.0
    constant = np.full((64, 64), 0.25, np.float32)
    np.testing.assert_allclose(guided_filter(guide, constant, 4, 1e-4), constant, atol=1e-5)
    # A blurred step whose true edge is the colour edge gets a sharp jump at that edge.
    step = np.where(np.arange(64) < 32, 0.0, 1.0).astype(np.float32)[None].repeat(64, 0)
    blurred = cv2.GaussianBlur(step, (0, 0), 3)
    filtered = guided_filter(guide, blurred, 4, 1e-4)
    jump_before = blurred[:, 32] - blurred[:, 31]
    jump_after = filtered[:, 32] - filtered[:, 31]
    assert (jump_after > 3 * jump_before).all()


@pytest.mark.parametrize('scale', [4, 8])
def test_guided_filter_beats_bicubic_on_a_real_pair(cones, scale):
    truth = crop_to_multiple(cones['depth'], scale)
    rgb = crop_to_multiple(cones['rgb'], scale)
    lr = bicubic_downsample(truth, scale)
    bicubic = mae(BicubicUpsampler(scale)(lr, rgb), truth)
    guided = mae(GuidedFilterUpsampler(scale)(lr, rgb), truth)
    assert guided < 0.97 * bicubic


def test_baselines_mark_missing_input_as_nan(cones):
    truth = crop_to_multiple(cones['depth'], 4)
    lr = bicubic_downsample(truth, 4)
    lr[2:4, 2:4] = np.nan
    for upsampler in (BicubicUpsampler(4), GuidedFilterUpsampler(4)):
        out = upsampler(lr, crop_to_multiple(cones['rgb'], 4))
        assert np.isnan(out[8:16, 8:16]).all()
        assert np.isfinite(out[:8]).all()
