"""The Predictor and the shared DepthUpsampler handling, on the real Middlebury fixture."""

import os

from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.data.degradations import bicubic_downsample, crop_to_multiple
from depth_sr_ros.data.middlebury import disparity_to_metres
from depth_sr_ros.inference import check_geometry, Predictor, select_device
from depth_sr_ros.metrics import mae
from depth_sr_ros.paths import default_model_path
import numpy as np
import pytest
import torch


class NearestNet(torch.nn.Module):
    """Stand-in network: nearest upsampling that insists on its size multiple."""

    size_multiple = 4

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.calls = []

    def forward(self, depth, guide):
        assert torch.is_inference_mode_enabled()
        assert depth.shape[2] % self.size_multiple == 0
        assert depth.shape[3] % self.size_multiple == 0
        assert guide.shape[2:] == (depth.shape[2] * self.scale, depth.shape[3] * self.scale)
        self.calls.append((tuple(depth.shape), float(depth.min()), float(depth.max())))
        return torch.nn.functional.interpolate(depth, scale_factor=self.scale, mode='nearest')


def _holes(depth):
    depth = depth.copy()
    depth[3:6, 4:9] = np.nan
    depth[10, 2] = 0.0
    depth[0, -1] = np.inf
    return depth


def test_padding_normalisation_and_invalid_marking_with_a_stand_in_network():
    rng = np.random.default_rng(0)
    depth = _holes(rng.uniform(0.5, 4.0, (13, 22)).astype(np.float32))  # not multiples of 4
    color = rng.integers(0, 256, (26, 44, 3), dtype=np.uint8)
    net = NearestNet(scale=2)
    out = Predictor(net, scale=2, device='cpu')(depth, color)
    assert out.shape == (26, 44) and out.dtype == np.float32
    shape, low, high = net.calls[0]
    assert shape == (1, 1, 16, 24)  # padded up to multiples of 4
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)  # min-max normalised
    valid = np.isfinite(depth) & (depth > 0)
    expected = np.where(valid, depth, np.nan).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5)  # includes NaN positions


def test_all_invalid_depth_gives_all_nan_without_running_the_network():
    net = NearestNet(scale=2)
    predictor = Predictor(net, scale=2, device='cpu')
    out = predictor(np.zeros((4, 4), np.float32), np.zeros((8, 8, 3), np.uint8))
    assert out.shape == (8, 8) and np.isnan(out).all()
    assert net.calls == []


@pytest.mark.parametrize('depth_shape,color_shape,message', [
    ((10, 10), (40, 30, 3), 'different width and height ratios'),
    ((10, 10), (35, 35, 3), 'not an integer multiple'),
    ((10, 10), (20, 20, 3), 'is 2x depth 10x10, but this upsampler works at 4x'),
    ((0, 10), (0, 40, 3), 'empty image'),
])
def test_size_ratios_that_do_not_fit_are_clear_errors(depth_shape, color_shape, message):
    with pytest.raises(ValueError, match=message):
        check_geometry(depth_shape, color_shape, 4)
    with pytest.raises(ValueError, match=message):
        BicubicUpsampler(4)(np.ones(depth_shape, np.float32), np.zeros(color_shape, np.uint8))


def test_device_selection():
    assert select_device('cpu') == torch.device('cpu')
    assert select_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA is not available'):
            select_device('cuda')


@pytest.fixture(scope='module')
def shipped():
    path = default_model_path()
    assert os.path.exists(path), f'the default model {path} is missing'
    return Predictor.from_checkpoint(path, device='cpu')


def test_shipped_model_on_a_real_middlebury_pair_with_holes(shipped, cones):
    s = shipped.scale
    truth = crop_to_multiple(disparity_to_metres(cones['depth']), s)
    rgb = crop_to_multiple(cones['rgb'], s)
    depth_lr = bicubic_downsample(truth, s)
    depth_lr[5:9, 10:20] = np.nan  # a missing region, as a sensor would have
    depth_lr[20, 30] = 0.0  # and a single dropout
    out = shipped(depth_lr, rgb)
    assert out.shape == truth.shape
    hole = np.zeros(depth_lr.shape, bool)
    hole[5:9, 10:20] = True
    hole[20, 30] = True
    hole_hr = hole.repeat(s, axis=0).repeat(s, axis=1)
    assert np.isnan(out[hole_hr]).all()
    assert np.isfinite(out[~hole_hr]).all()
    # The trained network must beat bicubic on a real pair (both over the same pixels).
    bicubic = BicubicUpsampler(s)(depth_lr, rgb)
    assert mae(out, truth) < 0.9 * mae(bicubic, truth)


def test_bgr_colour_order_gives_the_same_result(shipped, cones):
    s = shipped.scale
    truth = crop_to_multiple(disparity_to_metres(cones['depth']), s)[:64, :64]
    rgb = crop_to_multiple(cones['rgb'], s)[:64, :64]
    depth_lr = bicubic_downsample(truth, s)
    bgr_predictor = Predictor(shipped.model, s, device='cpu', color_order='bgr')
    np.testing.assert_array_equal(bgr_predictor(depth_lr, rgb[:, :, ::-1].copy()),
                                  shipped(depth_lr, rgb))
