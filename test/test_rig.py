"""The simulated rig of training: a depth camera's view registered as the node registers it."""

import dataclasses
import math

import cv2
from depth_sr_ros.alignment import finer_grid
from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.data.datasets import CropDataset
from depth_sr_ros.data.rig import (
    CALIBRATION_ROTATION_DEG, CALIBRATION_TRANSLATION_M, draw_rig, from_metres,
    OFFSET_DEPTH_PIXELS, rig_capture, rotation, sensor_faults, simulate_rig, to_metres)
from depth_sr_ros.data.synthetic import synthetic_pair
from depth_sr_ros.geometry.grids import plan_grids
from depth_sr_ros.geometry.registration import mesh_depth, reduce_registered
from depth_sr_ros.preprocessing import depth_range, normalize_depth, valid_depth_mask
from depth_sr_ros.ros.pipeline import FrameProcessor
import numpy as np
import pytest


@pytest.fixture(scope='module')
def truth():
    """
    Return a synthetic scene as training crops hold it: disparity normalised to 0..1.

    Smooth surfaces with depth edges; Middlebury's 8-bit disparity would add its own steps
    (up to 2 % of the depth) to every comparison.
    """
    depth = synthetic_pair(np.random.default_rng(11), 192, 256)['depth']
    valid = valid_depth_mask(depth)
    low, high = depth_range(depth, valid)
    return np.where(valid, normalize_depth(depth, low, high), np.nan).astype(np.float32)


@pytest.mark.parametrize('route', ['raw', 'registered'])
@pytest.mark.parametrize('scale', [2, 4, 8])
def test_a_perfect_rig_with_its_true_calibration_gives_the_truth_on_the_lr_grid(
        truth, scale, route):
    # Each drawn rig, and the same rig with a strong barrel distortion of its depth lens.
    for seed, strong_lens in [(0, False), (1, False), (2, False), (0, True), (1, True)]:
        rng = np.random.default_rng(seed)
        rig = draw_rig(rng, truth.shape, scale, calibration_error=False)
        if strong_lens:
            rig = dataclasses.replace(rig, depth=dataclasses.replace(
                rig.depth, d=(-0.2, 0.0, 0.0, 0.0, 0.0), model='plumb_bob'))
        low = simulate_rig(truth, scale, rng, faults=False, rig=rig, route=route)
        # What a perfect registration gives: the truth at the LR pixel centres, in metres, or
        # on the registered route the node's lower median of the truth's HR pixels.
        lr = plan_grids(rig.color, scale).lr
        metres = to_metres(truth, rig.near, rig.far)
        rows, columns = np.mgrid[0:lr.height, 0:lr.width].astype(np.float32)
        expected = mesh_depth(metres, (columns + 0.5) * scale - 0.5,
                              (rows + 0.5) * scale - 0.5).reshape(lr.shape)
        if route == 'registered':
            expected = reduce_registered(metres, rig.color, lr)
        got = to_metres(low, rig.near, rig.far)
        both = np.isfinite(got) & np.isfinite(expected)
        assert both.mean() > 0.9, (seed, rig)
        error = np.full(lr.shape, np.nan)
        error[both] = np.abs(got[both] - expected[both]) / expected[both]
        # Within the registration's own error: exact on surfaces (float32 rounding; a depth
        # image rendered through another lens, or moved by a pixel, is 1e-4 off or worse)...
        assert np.median(error[both]) < 2e-5, (seed, rig)
        # ... and one sample off beside an edge of the truth (a step in the 3x3 around) or in
        # the few pixels that parallax hides from the depth camera (a rig moved by one LR
        # pixel leaves 1e-3 to 4e-3 of them off away from the edges).
        kernel = np.ones((3, 3), np.uint8)
        filled = np.where(np.isfinite(expected), expected, np.nanmax(expected))
        edges = cv2.dilate(filled, kernel) - cv2.erode(filled, kernel) > 0.02 * filled
        off = both & (np.nan_to_num(error) > 0.02)
        assert (off & ~edges).mean() < 5e-4, (seed, rig)
        assert off.mean() < 0.05, (seed, rig)


def _crossings(row, level, columns):
    """
    Return the sub-pixel columns (within ``columns``) where a row crosses ``level``.

    (N, 2): each crossing's column and direction (1 rising, -1 falling).
    """
    found = []
    for i in range(columns.start, columns.stop - 1):
        a, b = row[i], row[i + 1]
        if np.isfinite(a) and np.isfinite(b) and (a - level) * (b - level) < 0:
            found.append((i + (level - a) / (b - a), np.sign(b - a)))
    return np.array(found, np.float64).reshape(-1, 2)


@pytest.mark.parametrize('seed', [5, 8])
def test_a_calibration_error_moves_the_depth_by_the_drawn_amount(seed):
    # Slanted bars (training value 0.9) before a wall (0.2). The registration never puts a
    # depth between two surfaces, so each edge sits on an LR pixel boundary; slanted, the
    # edges meet every sub-pixel phase along the rows and their mean shift is the true one.
    rows, columns = np.mgrid[0:192, 0:256]
    bars = np.where((columns + 0.37 * rows) % 48 < 20, 0.9, 0.2).astype(np.float32)
    rng = np.random.default_rng(seed)
    rig = draw_rig(rng, bars.shape, 2, calibration_error=False)
    degrees = 2.0  # about the colour camera's y axis: a shift along the rows
    turned = rig.depth_to_color.then(rotation((0, 1, 0), degrees))
    exact = simulate_rig(bars, 2, rng, faults=False, rig=rig)
    moved = simulate_rig(bars, 2, rng, faults=False,
                         rig=dataclasses.replace(rig, calibrated=turned))
    lr = plan_grids(rig.color, 2).lr
    # A turn by theta moves a ray at angle alpha by f (tan(alpha + theta) - tan(alpha)), in
    # LR pixels; measured in the middle third of the columns.
    f, cx = lr.matrix[0, 0], lr.matrix[0, 2]
    third = slice(lr.width // 3, 2 * lr.width // 3)
    alpha = np.arctan((np.arange(lr.width)[third] - cx) / f)
    expected = float(np.mean(f * (np.tan(alpha + math.radians(degrees)) - np.tan(alpha))))
    shifts = []
    wider = slice(third.start - 8, third.stop + 8)  # room for the moved edges
    for before, after in zip(exact[8:-8], moved[8:-8]):
        after = _crossings(after, 0.55, wider)
        for x, direction in _crossings(before, 0.55, third):
            # The moved edge is the one of the same direction near the drawn shift; a bar
            # and a gap are 10 and 14 LR pixels wide, so edges 4 pixels away are others
            # (or the moved edge is missing: a hole beside it).
            moved_by = after[after[:, 1] == direction, 0] - x
            if moved_by.size and np.min(np.abs(moved_by - expected)) < 4:
                shifts.append(moved_by[np.argmin(np.abs(moved_by - expected))])
    assert abs(expected) > 2 and len(shifts) > 100  # a shift large enough to see, measured
    # Edges sit on LR pixel boundaries: their mean over the phases is within a fifth of a pixel.
    assert np.mean(shifts) == pytest.approx(expected, abs=0.2)


def test_an_offset_rig_is_the_same_rig_turned_by_1_to_2_5_depth_pixels():
    for seed in range(20):
        plain = draw_rig(np.random.default_rng(seed), (192, 256), 4)
        offset = draw_rig(np.random.default_rng(seed), (192, 256), 4, offset=True)
        assert dataclasses.replace(offset, calibrated=plain.calibrated) == plain
        # The extra turn, plain's calibrated rotation taken off offset's.
        turn = (np.reshape(offset.calibrated.rotation, (3, 3))
                @ np.reshape(plain.calibrated.rotation, (3, 3)).T)
        angle = math.acos(np.clip((np.trace(turn) - 1) / 2, -1, 1))
        pixels = math.tan(angle) * offset.depth.matrix[0, 0]
        assert OFFSET_DEPTH_PIXELS[0] - 1e-6 <= pixels <= OFFSET_DEPTH_PIXELS[1] + 1e-6
        axis = np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0],
                         turn[1, 0] - turn[0, 1]])
        assert abs(axis[2]) < 1e-3 * np.linalg.norm(axis)  # in the image plane: a move across it


def _angle_deg(rotation_matrix):
    return math.degrees(math.acos(np.clip((np.trace(rotation_matrix) - 1) / 2, -1, 1)))


def test_the_drawn_calibration_error_stays_within_its_bounds_and_reaches_them():
    angles, shifts = [], []
    for seed in range(60):
        rig = draw_rig(np.random.default_rng(seed), (192, 256), 4)
        # calibrated = depth_to_color, then the error: the error is true^-1 then calibrated.
        error = rig.depth_to_color.inverse().then(rig.calibrated)
        angles.append(_angle_deg(np.reshape(error.rotation, (3, 3))))
        # The error's own translation (applied after the rig's) in the colour frame.
        rotated = np.reshape(rig.calibrated.rotation, (3, 3))
        true_t = rotated @ np.reshape(rig.depth_to_color.rotation, (3, 3)).T @ np.array(
            rig.depth_to_color.translation)
        shifts.append(np.abs(np.array(rig.calibrated.translation) - true_t).max())
    assert max(angles) <= CALIBRATION_ROTATION_DEG + 1e-6
    assert max(angles) > 0.8 * CALIBRATION_ROTATION_DEG and min(angles) < 0.2 * max(angles)
    assert max(shifts) <= CALIBRATION_TRANSLATION_M + 1e-9
    assert max(shifts) > 0.8 * CALIBRATION_TRANSLATION_M


def test_a_lens_is_never_drawn_that_leaves_depth_pixels_without_a_ray():
    lenses = 0
    for seed in range(300):
        rig = draw_rig(np.random.default_rng(seed), (192, 256), 4, calibration_error=False)
        lenses += bool(rig.depth.d)
        assert not np.isnan(rig.depth.undistorted_rays()).any(), seed
    assert lenses > 100


def test_the_offset_rig_has_the_same_sensor_faults_as_the_rig_without_it(truth):
    for seed in range(4):
        plain, a = rig_capture(truth, 4, np.random.default_rng(seed))
        moved, b = rig_capture(truth, 4, np.random.default_rng(seed), offset=True)
        assert plain.depth == moved.depth and plain.calibrated != moved.calibrated
        np.testing.assert_array_equal(a, b)


def test_one_level_of_integer_disparity_is_no_depth_edge_far_away():
    # A smooth slanted wall in Middlebury's 1-level disparity steps, beside a near box that
    # sets the range: far away one level is a large step in metres, yet no edge, so the
    # sensor neither loses the wall's returns there nor puts flying pixels on it.
    rows, columns = np.mgrid[0:192, 0:256].astype(np.float32)
    disparity = 73 + 17 * columns / 255 + 5 * rows / 191
    disparity[20:60, 20:60] = 208
    lost = {}
    for name, values in (('smooth', disparity), ('stairs', np.round(disparity))):
        values = (values - values.min()) / (values.max() - values.min())
        base = draw_rig(np.random.default_rng(0), values.shape, 4, calibration_error=False)
        rig = dataclasses.replace(base, near=0.5, far=6.0)
        fractions = []
        for seed in range(10):
            _, depth = rig_capture(values, 4, np.random.default_rng(seed), rig=rig)
            wall = np.ones(depth.shape, bool)  # the wall away from the box (in the top left)
            wall[:depth.shape[0] // 2 + 2, :depth.shape[1] // 2 + 2] = False
            fractions.append(np.isnan(depth[wall]).mean())
        lost[name] = np.mean(fractions)
    assert lost['stairs'] < lost['smooth'] + 0.005, lost


def test_a_crops_depth_camera_covers_the_crop_as_the_images_covers_the_image(truth):
    # A crop of a four times wider image: the depth camera's margin past it is the whole
    # field's (its turn of up to 3 degrees and its parallax are angles); sized by the crop's
    # own, its view slid off the crop and left whole borders without depth.
    mean, worst = [], []
    for seed in range(20):
        low = simulate_rig(truth, 4, np.random.default_rng(seed), faults=False,
                           field_width=4 * truth.shape[1])
        empty = np.isnan(low)
        mean.append(empty.mean())
        worst.append(max(empty[:, :3].mean(), empty[:, -3:].mean(), empty[:3].mean(),
                         empty[-3:].mean()))
    assert max(mean) < 0.08 and max(worst) < 0.6, (mean, worst)


def _grey_of(values):
    """Return an RGB image whose edges are the depth edges of training values (NaN: black)."""
    grey = 40 + 180 * np.nan_to_num(values, nan=0.0)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def test_the_alignment_moves_an_offset_rig_back_and_leaves_it_without_colour_edges(truth):
    off, aligned = [], []
    for seed in range(6):
        plain = draw_rig(np.random.default_rng(seed), truth.shape, 4, calibration_error=False)
        rig = draw_rig(np.random.default_rng(seed), truth.shape, 4, calibration_error=False,
                       offset=True)
        exact = simulate_rig(truth, 4, None, faults=False, rig=plain)

        def error(low):
            both = np.isfinite(low) & np.isfinite(exact)
            return float(np.sqrt(np.mean((low[both] - exact[both]) ** 2)))
        moved = simulate_rig(truth, 4, None, faults=False, rig=rig)
        back = simulate_rig(truth, 4, None, faults=False, rig=rig, color=_grey_of(truth))
        off.append(error(moved))
        aligned.append(error(back))
        assert aligned[-1] <= off[-1], seed
        # A colour image without edges: no clear match, the depth stays as registered.
        flat = simulate_rig(truth, 4, None, faults=False, rig=rig,
                            color=np.full(truth.shape + (3,), 128, np.uint8))
        np.testing.assert_array_equal(flat, moved)
    assert np.mean(aligned) < 0.6 * np.mean(off), (off, aligned)


def test_the_simulation_aligns_on_the_grid_the_node_uses_at_its_scale(truth, monkeypatch):
    import depth_sr_ros.data.rig as rig_module
    calls = []
    real = rig_module.align_still

    def spy(register, color, max_shift, finer, low, min_correction):
        calls.append((register((0.0, 0.0), finer).shape, max_shift, finer, min_correction))
        return real(register, color, max_shift, finer, low, min_correction=min_correction)
    monkeypatch.setattr(rig_module, 'align_still', spy)
    for scale in (2, 4, 8):
        rig = draw_rig(np.random.default_rng(1), truth.shape, scale, offset=True)
        low = simulate_rig(truth, scale, None, faults=False, rig=rig, color=_grey_of(truth))
        assert low.shape == (truth.shape[0] // scale, truth.shape[1] // scale)
    # The node's search range, grid and smallest correction at each scale.
    node = [FrameProcessor(BicubicUpsampler(s)).aligner for s in (2, 4, 8)]
    assert calls == [((truth.shape[0] // s * f, truth.shape[1] // s * f), a.max_shift, f,
                      a.min_correction) for s, f, a in zip((2, 4, 8), (1, 1, 2), node)]
    assert [finer for _, _, finer, _ in calls] == [finer_grid(s) for s in (2, 4, 8)]
    assert calls[0][3] == 1.5  # 3 output pixels at 2x


def test_a_rig_drawn_for_another_scale_is_refused_not_half_used(truth):
    # The registration would follow the rig's scale and the alignment the argument's.
    rig = draw_rig(np.random.default_rng(1), truth.shape, 4)
    with pytest.raises(ValueError, match='drawn for 4x, not 8x'):
        simulate_rig(truth, 8, None, faults=False, rig=rig)


def test_metres_and_training_values_convert_both_ways():
    values = np.array([0.0, 0.25, 1.0, np.nan], np.float32)
    metres = to_metres(values, 0.8, 4.0)
    np.testing.assert_allclose(metres[[0, 2]], [4.0, 0.8], rtol=1e-6)
    np.testing.assert_allclose(from_metres(metres, 0.8, 4.0), values, atol=1e-6)


def test_the_training_crops_take_a_share_of_rig_samples(cones):
    plain = CropDataset([cones], 4, 128, sensor=0.0)
    rigged = CropDataset([cones], 4, 128, sensor=0.0, rig=1.0)
    a = plain.sample(np.random.default_rng(3))
    b = rigged.sample(np.random.default_rng(3))
    assert b['depth_lr'].shape == a['depth_lr'].shape == (1, 32, 32)
    assert np.isfinite(b['depth_lr']).all()  # holes filled as at run time
    assert not np.allclose(a['depth_lr'], b['depth_lr'])
    # Without the rig the samples stay those of earlier versions (no extra random draw).
    again = CropDataset([cones], 4, 128, sensor=0.0, rig=0.0).sample(np.random.default_rng(3))
    np.testing.assert_array_equal(a['depth_lr'], again['depth_lr'])


def test_rig_samples_can_come_off_and_be_aligned_as_the_node_aligns(cones, monkeypatch):
    import depth_sr_ros.data.datasets as datasets_module
    calls = []
    real = datasets_module.simulate_rig

    def spy(depth, scale, rng, offset=False, color=None, **kwargs):
        calls.append((offset, None if color is None else color.shape))
        low = real(depth, scale, rng, offset=offset, color=color, **kwargs)
        lost.append(np.isnan(low).mean())
        return low
    lost = []
    monkeypatch.setattr(datasets_module, 'simulate_rig', spy)
    rigged = CropDataset([cones], 4, 128, sensor=0.0, rig=1.0, rig_offset=0.5)
    samples = [rigged.sample(np.random.default_rng(seed)) for seed in range(12)]
    assert all(np.isfinite(s['depth_lr']).all() for s in samples)
    # Before the fill: the crops' colour is float in 0..1, which the dark-surface rule once
    # read as 0..255 (all dark: 60 % of the depth lost).
    assert np.mean(lost) < 0.2, lost
    # About half drawn off; every one given the crop's colour (its dark surfaces, and the
    # alignment the node runs on every rig).
    assert 2 <= sum(offset for offset, _ in calls) <= 10
    assert all(shape == (128, 128, 3) for _, shape in calls)


def _ramp_with_a_margin():
    """Return a plane tilting from 1 to 2 m beside a margin outside the depth camera (NaN)."""
    depth = np.tile(np.linspace(1.0, 2.0, 64, dtype=np.float32), (64, 1))
    depth[:, :12] = np.nan
    return depth


def test_the_sensor_blur_never_pulls_valid_depth_toward_the_holes_fill():
    # Holes used to be filled with the frame's farthest depth before the blur: valid pixels
    # beside the view's margin were pulled toward it (up to twice their depth).
    depth = _ramp_with_a_margin()
    depth[40:50, 30:40] = 4.0  # something far, so that the farthest depth is far off
    for seed in range(20):
        out = sensor_faults(depth, 60.0, np.random.default_rng(seed))
        border = np.isfinite(out[:, 12:16])
        assert border.any()
        relative = np.abs(out[:, 12:16][border] / depth[:, 12:16][border] - 1)
        assert relative.max() < 0.1, (seed, relative.max())


def test_the_sensor_loses_returns_at_its_far_end_in_some_draws():
    # The far-end rule took its quantile over the hole-filled image, which the fill decided:
    # it never lost a pixel.
    depth = _ramp_with_a_margin()
    far = depth >= np.nanquantile(depth, 0.99)
    lost_far = [np.isnan(sensor_faults(depth, 60.0, np.random.default_rng(seed))[far]).all()
                for seed in range(40)]
    assert 4 <= sum(lost_far) <= 24  # about 30 % of the draws


def test_dark_surfaces_lose_returns_and_the_brightness_is_looked_up_through_the_rig(truth):
    # A dark square in the colour image: the depth camera, seeing it from its own place,
    # loses its returns there in some draws, and never where the colour is bright.
    rng = np.random.default_rng(3)
    rig = draw_rig(rng, truth.shape, 4, calibration_error=False)
    color = np.full(truth.shape + (3,), 230, np.uint8)
    color[60:130, 80:180] = 5
    plain = simulate_rig(truth, 4, None, faults=False, rig=rig)
    # The brightness the depth camera sees, registered back as depth is: the square's place.
    metres = to_metres(np.where(truth >= 0, truth, np.nan), rig.near, rig.far)
    from depth_sr_ros.data.rig import render_depth_camera, seen_brightness
    seen = render_depth_camera(metres, rig)
    brightness = seen_brightness(color, seen, rig)
    np.testing.assert_array_equal(seen_brightness(color / np.float32(255), seen, rig),
                                  brightness)  # uint8 or float in 0..1, as the training crops
    dark = brightness < 0.1
    assert 0.1 < dark[np.isfinite(brightness)].mean() < 0.4
    lost_dark, lost_bright = [], []
    for seed in range(30):
        depth = sensor_faults(seen, rig.depth.matrix[0, 0], np.random.default_rng(seed),
                              brightness)
        lost = np.isnan(depth) & np.isfinite(seen)
        lost_dark.append(lost[dark].mean())
        lost_bright.append(lost[brightness > 0.5].mean())
    assert max(lost_dark) > 0.5 and sum(share > 0.3 for share in lost_dark) >= 5
    assert max(lost_bright) < 0.3  # edges, blobs and the far end only
    assert np.isfinite(plain).mean() > 0.9


def _plane(degrees, focal=20.0, size=64, z=2.0):
    """Return a plane turned ``degrees`` about the vertical axis, seen by a pinhole camera."""
    u = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.tile(z / (1 - u * math.tan(math.radians(degrees)) / focal),
                   (size, 1)).astype(np.float32)


def test_the_sensor_puts_flying_pixels_on_depth_edges_not_on_steep_planes():
    # The edge test was a 3x3 depth range over 5 % of the depth: on the small depth images of
    # training crops (a few degrees per pixel) most of a plane turned 45-60 degrees passed it,
    # and took flying pixels and edge losses.
    steep = _plane(60.0, focal=40.0, size=24, z=1.0)  # 1.4 degrees a pixel: 3-9 % a pixel
    step = np.full((64, 64), 1.0, np.float32)
    step[:, 32:] = 2.0
    floating_on_steps = 0
    for seed in range(20):
        out = sensor_faults(steep, 40.0, np.random.default_rng(seed))
        valid = np.isfinite(out)
        relative = np.abs(out[valid] / steep[valid] - 1)
        assert relative.max() < 0.07, (seed, relative.max())  # noise alone: 1 % sigma at most
        out = sensor_faults(step, 20.0, np.random.default_rng(seed))
        floating = (out > 1.1) & (out < 1.9)
        assert not floating[:, :30].any() and not floating[:, 34:].any()
        floating_on_steps += int(floating.sum())
    assert floating_on_steps > 50


def test_the_sensor_loses_returns_on_grazing_surfaces_in_some_draws():
    # The grazing rule asked for a slope that the edge test always flagged first: it never
    # lost a pixel.
    def lost(degrees, seed):
        plane = _plane(degrees, focal=200.0)
        return np.isnan(sensor_faults(plane, 200.0, np.random.default_rng(seed))).mean()
    grazing = [lost(80.0, seed) for seed in range(40)]
    facing = [lost(60.0, seed) for seed in range(40)]
    assert max(facing) < 0.2  # blobs and the far end only
    assert sum(share > 0.45 for share in grazing) >= 5


def test_a_calibrated_rig_at_a_size_off_the_scale_is_left_as_it_is_by_the_alignment():
    # 1001x500 at 8x: the grids are padded to 1008x504. The alignment must see the colour as
    # the node shows it (padded, not stretched onto the padded grid), or it moves the depth.
    for seed in range(4):
        rng = np.random.default_rng(seed)
        mask = np.zeros((500, 1001), bool)
        for _ in range(40):
            r, c = rng.integers(0, 440), rng.integers(60, 940)
            mask[r:r + rng.integers(20, 60), c:c + rng.integers(20, 60)] ^= True
        values = np.where(mask, 0.9, 0.2).astype(np.float32)
        color = np.repeat(np.where(mask, 200, 50).astype(np.uint8)[..., None], 3, axis=2)
        rig = draw_rig(rng, values.shape, 8, calibration_error=False)
        as_registered = simulate_rig(values, 8, rng, faults=False, rig=rig)
        aligned = simulate_rig(values, 8, rng, faults=False, rig=rig, color=color)
        np.testing.assert_array_equal(aligned, as_registered, err_msg=f'seed {seed}')
