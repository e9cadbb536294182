"""Hole filling, normalisation and colour conversion shared by training and inference."""

from depth_sr_ros.preprocessing import (
    color_to_unit, denormalize_depth, depth_range, fill_missing, normalize_depth,
    valid_depth_mask)
import numpy as np
import pytest


def test_valid_mask_rejects_zero_nan_inf_and_negative():
    depth = np.array([[1.0, 0.0, np.nan], [np.inf, -2.0, 0.5]], np.float32)
    np.testing.assert_array_equal(valid_depth_mask(depth), [[1, 0, 0], [0, 0, 1]])


def test_fill_missing_takes_the_nearest_valid_value():
    depth = np.array([[1, 1, 0, 0, 0, 9, 9]], np.float32).repeat(3, 0)
    filled = fill_missing(depth, depth > 0)
    np.testing.assert_array_equal(filled[1], [1, 1, 1, filled[1, 3], 9, 9, 9])
    assert filled[1, 3] in (1, 9)
    with pytest.raises(ValueError, match='no valid pixel'):
        fill_missing(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))


def test_normalisation_round_trip_and_flat_images():
    depth = np.array([[2.0, 3.0], [4.0, 6.0]], np.float32)
    low, high = depth_range(depth, depth > 0)
    norm = normalize_depth(depth, low, high)
    assert norm.min() == 0 and norm.max() == 1
    np.testing.assert_allclose(denormalize_depth(norm, low, high), depth)
    flat = np.full((3, 3), 1.5, np.float32)
    low, high = depth_range(flat, flat > 0)
    assert high > low
    assert np.isfinite(normalize_depth(flat, low, high)).all()


def test_colour_conversion():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(color_to_unit(rgb)[0, 0], [1, 0, 0])
    np.testing.assert_allclose(color_to_unit(rgb, 'bgr')[0, 0], [0, 0, 1])
    assert color_to_unit(np.full((2, 2), 51, np.uint8)).shape == (2, 2, 3)
    with pytest.raises(ValueError, match='colour order'):
        color_to_unit(rgb, 'rgba')
    with pytest.raises(ValueError, match='dtype'):
        color_to_unit(rgb.astype(np.int32))
    # uint8 values passed as floats: 255 times too bright for the network, refused.
    with pytest.raises(ValueError, match=r'float colour must be in \[0, 1\], this one reaches '
                                         '255 .pass uint8, or divide by 255.'):
        color_to_unit(rgb.astype(np.float32))
    np.testing.assert_allclose(color_to_unit(rgb / 255.0)[0, 0], [1, 0, 0])
