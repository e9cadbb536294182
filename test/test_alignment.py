"""Online alignment: depth that sits off the colour image is found from edges and moved back."""

import math

import cv2

from depth_sr_ros import alignment
from depth_sr_ros.alignment import (
    Aligner, color_edges, depth_edges, edge_correlation, matching_grid, MIN_CORRECTION, peak)
from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.data.scene import make_scene, render_rig, RIGS
from depth_sr_ros.geometry.camera import pinhole_camera
from depth_sr_ros.geometry.grids import plan_grids
from depth_sr_ros.geometry.registration import reduce_registered
from depth_sr_ros.ros.conversions import (
    camera_info_message, image_message, image_to_array, metres_to_image)
from depth_sr_ros.ros.pipeline import FrameProcessor, Settings
import numpy as np
import pytest
from sensor_msgs.msg import Image

RIG = RIGS['aligned']  # depth registered to the 1280x720 colour camera
FRAME = 'colour'


@pytest.fixture(scope='module')
def frames():
    scene = make_scene()
    return [render_rig(scene, RIG, i, 8) for i in range(8)]


def _moved(depth, dx, dy):
    """Return depth that sits dx right and dy below where it belongs (integer pixels)."""
    out = np.full_like(depth, np.nan)
    h, w = depth.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        depth[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _serve(processor, frames, settings, count, move=(0, 0)):
    """Run ``count`` frames through the processor; return the last result's depth and it."""
    info = camera_info_message(RIG.color, FRAME)
    result = None
    said = []
    for i in range(count):
        frame = frames[i % len(frames)]
        depth = metres_to_image(_moved(frame['depth'], *move), '32FC1', Image().header)
        depth.header.frame_id = FRAME
        color_msg = image_message(frame['color'], 'rgb8', FRAME)
        result = processor.process(depth, color_msg, info, info, settings)
        said += result.advice
    result.advice = said  # every frame's
    return image_to_array(result.depth), result


def test_the_edge_match_finds_a_known_offset_on_a_clean_scene():
    rows, columns = np.mgrid[0:720, 0:1280]
    mask = ((columns + 0.37 * rows) % 200 < 90) | ((rows * 1.3 - 0.2 * columns) % 170 < 40)
    depth = np.where(mask, 1.0, 2.0).astype(np.float32)
    color = np.where(mask, 200, 50).astype(np.uint8)
    camera = pinhole_camera(1280, 720, 900.0)
    lr = plan_grids(camera, 4).lr
    for dx, dy in ((0.0, 0.0), (2.0, 1.0), (-3.5, 0.5)):
        low = reduce_registered(depth, camera, lr.moved(dx, dy))
        found = peak(edge_correlation(depth_edges(low), color_edges(color, low.shape), 8))
        assert found[:2] == pytest.approx((dx, dy), abs=0.15)


def test_an_offset_is_found_and_moved_back_within_half_an_lr_pixel(frames):
    settings = Settings()
    processor = FrameProcessor(BicubicUpsampler(4))
    _, result = _serve(processor, frames, settings, 20, move=(12, -8))  # 3, -2 LR pixels
    estimate = processor.aligner.estimate
    assert estimate.correction == pytest.approx((3.0, -2.0), abs=0.5)
    assert result.offset == pytest.approx((12.0, -8.0), abs=2.0)  # output pixels
    said = ' '.join(result.advice)
    assert 'px right of and' in said and 'px above the colour image' in said
    # The corrected output is closer to the unmoved depth's than the uncorrected one.
    aligned, _ = _serve(FrameProcessor(BicubicUpsampler(4)), frames, Settings(alignment='off'),
                        1)
    moved_off, _ = _serve(FrameProcessor(BicubicUpsampler(4)), frames,
                          Settings(alignment='off'), 1, move=(12, -8))
    corrected, _ = _serve(processor, frames, settings, 1, move=(12, -8))

    def error(out):
        both = (out > 0) & (aligned > 0)
        return np.median(np.abs(out[both].astype(float) - aligned[both]))
    assert error(corrected) < 0.5 * error(moved_off)


def test_a_calibrated_rig_is_left_unchanged_and_a_fixed_offset_is_applied(frames):
    processor = FrameProcessor(BicubicUpsampler(4))
    auto, result = _serve(processor, frames, Settings(), 20)
    assert processor.aligner.estimate.correction == (0.0, 0.0)
    assert result.offset == (0.0, 0.0) and not result.advice
    residual = processor.aligner.estimate.residual
    assert residual is not None and np.hypot(*residual) < MIN_CORRECTION  # seen, small
    off, _ = _serve(FrameProcessor(BicubicUpsampler(4)), frames, Settings(alignment='off'), 20)
    np.testing.assert_array_equal(auto, off)
    # 'fixed' moves the depth back by the given output pixels, without looking.
    fixed, result = _serve(FrameProcessor(BicubicUpsampler(4)), frames,
                           Settings(alignment='fixed', alignment_offset=[12.0, -8.0]), 1,
                           move=(12, -8))
    assert result.offset == (12.0, -8.0)
    first, _ = _serve(FrameProcessor(BicubicUpsampler(4)), frames, Settings(alignment='off'), 1)
    both = (fixed > 0) & (first > 0)
    assert np.median(np.abs(fixed[both].astype(float) - first[both])) < 1e-3  # metres


def test_at_8x_the_match_is_made_on_a_grid_twice_as_fine_and_half_an_lr_pixel_is_taken(
        frames):
    # 4 output pixels right and up: half an LR pixel at 8x, under MIN_CORRECTION on the LR
    # grid (which would leave it), one pixel and more on the grid twice as fine.
    processor = FrameProcessor(BicubicUpsampler(8))
    _, result = _serve(processor, frames, Settings(), 20, move=(4, -4))
    assert processor.aligner.estimate.correction == pytest.approx((0.5, -0.5), abs=0.2)
    assert result.offset == pytest.approx((4.0, -4.0), abs=1.6)  # output pixels
    # The depth the aligner matches: on the finer grid on the frames it correlates, moved by
    # the offset in that grid's pixels.
    fresh = FrameProcessor(BicubicUpsampler(8))
    grids = fresh.grids(RIG.color)
    depth = frames[0]['depth']
    low = reduce_registered(depth, RIG.color, grids.lr)
    assert fresh.aligner.due()
    seen, finer = fresh.alignment_depth(low, depth, 'registered', RIG.color, grids, None,
                                        (0.5, -0.5))
    fine = matching_grid(grids.lr, 2)
    assert finer == 2 and seen.shape == (fine.height, fine.width)
    np.testing.assert_array_equal(seen, reduce_registered(depth, RIG.color, fine.moved(-1, 1)))
    assert fresh.alignment_depth(low, depth, 'lr_grid', None, grids, None,
                                 (0.0, 0.0)) == (low, 1)
    # A calibrated rig at 8x: no move.
    calibrated = FrameProcessor(BicubicUpsampler(8))
    _, result = _serve(calibrated, frames, Settings(), 20)
    assert calibrated.aligner.estimate.correction == (0.0, 0.0) and result.offset == (0.0, 0.0)


def test_at_16x_the_match_is_made_on_a_grid_four_times_as_fine(frames):
    # 4 output pixels right and up: a quarter of an LR pixel at 16x, under MIN_CORRECTION on
    # a grid twice as fine (0.7 pixel), 1.4 pixels on the grid matched on (a quarter of the
    # output's resolution); a calibrated rig is left as it is.
    processor = FrameProcessor(BicubicUpsampler(16))
    _, result = _serve(processor, frames, Settings(), 20, move=(4, -4))
    assert processor.aligner.estimate.correction == pytest.approx((0.25, -0.25), abs=0.15)
    assert result.offset == pytest.approx((4.0, -4.0), abs=2.4)  # output pixels
    calibrated = FrameProcessor(BicubicUpsampler(16))
    _, result = _serve(calibrated, frames, Settings(), 20)
    assert calibrated.aligner.estimate.correction == (0.0, 0.0) and result.offset == (0.0, 0.0)


def _stripes():
    """Return a 1280x720 camera, its 4x LR grid, mask(shift) of a striped scene, its colour."""
    rows, columns = np.mgrid[0:720, 0:1280]
    camera = pinhole_camera(1280, 720, 900.0)

    def mask(shift):  # the scene moved ``shift`` pixels right
        c = columns - shift
        return ((c + 0.37 * rows) % 200 < 90) | ((rows * 1.3 - 0.2 * c) % 170 < 40)
    return camera, plan_grids(camera, 4).lr, mask, np.where(mask(0), 200, 50).astype(np.uint8)


def test_on_whole_pixels_the_correction_stays_whole_so_a_later_residual_adds_up():
    # Depth that arrives on the LR grid moves by whole LR pixels (FrameProcessor.offset): the
    # residual measured after a move of round(c) must add to round(c), not to c. A rig 1.5 LR
    # pixels off, then bumped to 3.75: the correction ends at the nearest whole pixel, 4 (kept
    # fractional, it ended at 3.08, applied as 3, and the 0.75 left stayed under
    # MIN_CORRECTION).
    camera, lr, mask, color = _stripes()
    aligner = Aligner(8, every=1, min_frames=3)
    for lr_pixels, frames in ((1.5, 6), (3.75, 30)):
        arrived = reduce_registered(np.where(mask(round(lr_pixels * 4)), 1.0, 2.0).astype(
            np.float32), camera, lr)
        for _ in range(frames):
            dx, dy = aligner.correction(lr.shape)
            moved = reduce_registered(arrived, lr, lr.moved(-dx, -dy)) if dx or dy else arrived
            aligner.observe(moved, color, whole=True)
            assert all(v == math.floor(v) for v in aligner.estimate.correction)
    assert aligner.estimate.correction == (4.0, 0.0)


def _bumped_after(calibrated_frames, memory):
    """Return after how many frames a rig bumped 2 LR px right, after a calibrated run, moves."""
    camera, lr, mask, color = _stripes()
    calibrated, bumped = (reduce_registered(np.where(mask(s), 1.0, 2.0).astype(np.float32),
                                            camera, lr) for s in (0, 8))
    aligner = Aligner(8, every=1, memory=memory)
    for _ in range(calibrated_frames):
        assert not aligner.observe(calibrated, color)
    for frame in range(1, 400):
        if aligner.observe(bumped, color):
            # Taken while the old match still fades: pulled towards it by up to a third of
            # an LR pixel, which the next pool finds under MIN_CORRECTION and leaves.
            assert aligner.estimate.correction == pytest.approx((2.0, 0.0), abs=0.4)
            return frame
    return math.inf


def test_a_rig_bumped_after_a_long_calibrated_run_is_moved_back_within_about_memory_frames():
    # The pool is a moving average over about alignment.MEMORY correlated frames: however
    # long the calibrated run before the bump (100 or 300 frames), it is taken within about
    # MEMORY bumped frames (30 and 31 measured). A plain sum over every frame needs about as
    # many bumped frames as it had pooled: after 300, none of 400 is enough.
    after_100, after_300 = (_bumped_after(n, alignment.MEMORY) for n in (100, 300))
    assert after_300 <= 1.2 * alignment.MEMORY and after_300 <= after_100 + 2
    assert _bumped_after(300, math.inf) == math.inf


def test_frames_pooled_on_another_grid_do_not_count():
    rows, columns = np.mgrid[0:360, 0:640]
    mask = ((columns + 0.37 * rows) % 120 < 50) | ((rows * 1.3 - 0.2 * columns) % 110 < 30)
    color = np.where(mask[..., None], 200, 50).astype(np.uint8).repeat(3, axis=2)
    camera = pinhole_camera(640, 360, 450.0)
    depth = np.where(mask, 1.0, 2.0).astype(np.float32)
    lr = plan_grids(camera, 8).lr
    coarse = reduce_registered(depth, camera, lr.moved(1.0, 0.0))  # one LR pixel right
    fine = reduce_registered(depth, camera, matching_grid(lr, 2).moved(2.0, 0.0))
    aligner = Aligner(4, every=1, min_frames=2)
    assert not aligner.observe(coarse, color) and aligner.estimate.frames == 1
    # One frame on the finer grid: pooling starts again there, so it is not yet two frames.
    assert not aligner.observe(fine, color, 2) and aligner.estimate.frames == 1
    assert aligner.estimate.residual == pytest.approx((1.0, 0.0), abs=0.25)  # LR pixels
    assert aligner.observe(fine, color, 2)
    assert aligner.estimate.correction == pytest.approx((1.0, 0.0), abs=0.25)


def test_a_clear_peak_that_staying_matches_almost_as_well_is_not_taken(monkeypatch):
    # Correlation windows peaking 1.5 pixels right: a broad one, where the current
    # registration (the centre) correlates almost as well as the peak, and a narrow one.
    rows, columns = np.mgrid[-8:9, -8:9]
    broad, narrow = (np.exp(-((columns - 1.5) ** 2 + rows ** 2) / (2 * w * w)) for w in (3, 2))
    depth = np.full((90, 160), 2.0, np.float32)
    depth[:, 80:] = 1.0
    color = np.zeros((360, 640, 3), np.uint8)
    color[:, 320:] = 200
    for window, taken in ((broad, False), (narrow, True)):
        _, _, sigma, ratio, gain, _ = peak(window)
        assert sigma >= alignment.MIN_PEAK_SIGMA and ratio >= alignment.MIN_PEAK_RATIO
        assert (gain >= alignment.MIN_PEAK_GAIN) == taken
        monkeypatch.setattr(alignment, 'edge_correlation', lambda *args, w=window: w)
        aligner = Aligner(8, every=1, min_frames=1)
        assert aligner.observe(depth, color) == taken
        if taken:
            assert aligner.estimate.correction == pytest.approx((1.5, 0.0), abs=0.01)
        else:  # the peak is clear and reported, and nothing is moved
            assert aligner.estimate.residual == pytest.approx((1.5, 0.0), abs=0.01)
            assert aligner.estimate.correction == (0.0, 0.0)
            assert 'hardly better than as registered' in aligner.estimate.reason


def test_a_featureless_scene_changes_nothing_and_says_why():
    aligner = Aligner(8, every=1)
    depth = np.full((90, 160), 2.0, np.float32)
    grey = np.full((360, 640, 3), 128, np.uint8)
    for _ in range(10):
        assert not aligner.observe(depth, grey)
    assert aligner.estimate.correction == (0.0, 0.0)
    assert 'too few depth edges or no colour contrast' in aligner.estimate.reason
    # Edges in the depth but a colour image without them (a textureless wall): no clear match.
    depth[:, 80:] = 1.0
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for _ in range(10):
        assert not aligner.observe(depth, noise)
    assert aligner.estimate.correction == (0.0, 0.0)
    assert aligner.estimate.reason.startswith('no clear edge match yet')


def test_a_wall_without_depth_edges_is_not_moved_by_its_noise_against_the_texture():
    # A slanted wall (1 to 2.5 m) with 2 mm of noise in millimetres, before a textured colour
    # image: the two edge maps correlate at about 0.01 wherever they are shifted, yet the
    # shape of that noise passed the sigma and ratio tests, and such walls were moved by up to
    # the search bound.
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:180, 0:320].astype(np.float32)
    wall = 1.0 + 0.004 * columns + 0.001 * rows
    for _ in range(4):  # two of these four walls were moved
        texture = cv2.GaussianBlur(rng.uniform(0, 255, (720, 1280)).astype(np.float32), (0, 0),
                                   3).astype(np.uint8)
        color = np.dstack([texture] * 3)
        aligner = Aligner(8, every=1, min_frames=3, scale=4,
                          min_correction=alignment.lr_min_correction(4))
        for _ in range(20):
            depth = np.round((wall + rng.normal(0, 0.002, wall.shape)) * 1000) / 1000
            assert not aligner.observe(depth.astype(np.float32), color)
        assert aligner.estimate.correction == (0.0, 0.0)
        assert aligner.estimate.reason.startswith('no clear edge match yet')


def test_near_the_bound_whole_pixels_are_the_nearest_inside_it():
    # (3.5, 0.9) within 4: rounding gives (4, 1), outside; truncating each axis gave (3, 0),
    # 0.94 away, where (3, 1) is 0.51 away.
    assert alignment._nearest_whole_within((3.5, 0.9), 4.0) == (3.0, 1.0)
    assert alignment._nearest_whole_within((2.4, -1.6), 4.0) == (2.0, -2.0)
    assert alignment._nearest_whole_within((0.6, 0.6), 0.9) == (0.0, 0.0)


@pytest.mark.parametrize('whole', [False, True])
def test_an_offset_beyond_max_shift_is_held_at_the_bound_and_said(whole):
    # A rig 5 LR px right and 0.5 down, searched within 4: the correction goes 4 LR px along
    # the offset's direction and stays there, and the aligner says the match lies beyond the
    # bound. Clipped per axis, the correction crept in y on every pool and read as a new one.
    camera, lr, mask, color = _stripes()
    depth = np.where(mask(20), 1.0, 2.0).astype(np.float32)
    aligner = Aligner(4, every=1, min_frames=3)
    corrections = 0
    for _ in range(40):
        dx, dy = aligner.correction(lr.shape)
        moved = reduce_registered(depth, camera, lr.moved(-dx, -dy))
        corrections += aligner.observe(moved, color, whole=whole)
    assert corrections == 1
    assert math.hypot(*aligner.estimate.correction) <= 4.0 + 1e-9
    assert aligner.estimate.correction[0] > 3.5
    assert 'beyond alignment_max_shift (4 px): held at the bound' in aligner.estimate.reason


def test_max_shift_is_never_exceeded_and_below_one_lr_pixel_nothing_is_searched():
    # alignment_max_shift output pixels become whole LR pixels rounded down: 3 px at 4x used
    # to search and apply 4 px, 6 px 8 px.
    assert [alignment.lr_max_shift(p, 4) for p in (0.0, 3.0, 4.0, 6.0, 32.0)] == [0, 0, 1, 1, 8]
    # At 8x and 16x in pixels of the finer grid matched on: 6 px at 8x is one of its pixels.
    assert (alignment.lr_max_shift(6.0, 8), alignment.lr_max_shift(8.0, 16)) == (0.5, 0.5)
    camera, lr, mask, color = _stripes()
    aligner = Aligner(alignment.lr_max_shift(3.0, 4), every=1, min_frames=1)
    moved = reduce_registered(np.where(mask(8), 1.0, 2.0).astype(np.float32), camera, lr)
    assert not any(aligner.observe(moved, color) for _ in range(5))
    assert aligner.estimate.correction == (0.0, 0.0)
    assert aligner.estimate.reason == ('alignment_max_shift is less than one pixel of the grid '
                                       'the edges are matched on: no offset is searched')


@pytest.mark.parametrize('name', ['d435', 'tof'])
def test_at_2x_calibrated_raw_rigs_are_left_unchanged(name):
    # At 2x an LR pixel is 2 output pixels, and the pooled edge match on these calibrated rigs
    # sits 1.2-1.4 LR px off (colour edges without depth edges): without the floor of
    # MIN_CORRECTION_OUTPUT output pixels the aligner moved them and doubled their error.
    rig = RIGS[name]
    scene = make_scene()
    frames = [render_rig(scene, rig, i, 8) for i in range(4)]
    color_info = camera_info_message(rig.color, FRAME)
    depth_info = camera_info_message(rig.depth, 'depth')
    processor = FrameProcessor(BicubicUpsampler(2))
    for i in range(20):
        depth = metres_to_image(frames[i % 4]['depth'], '32FC1', Image().header)
        depth.header.frame_id = 'depth'
        color_msg = image_message(frames[i % 4]['color'], 'rgb8', FRAME)
        result = processor.process(depth, color_msg, depth_info, color_info, Settings(),
                                   rig.depth_to_color)
    assert processor.aligner.estimate.correction == (0.0, 0.0)
    assert result.offset == (0.0, 0.0)


def test_a_large_matching_grid_is_correlated_proportionally_more_rarely(monkeypatch):
    # A look's cost grows with the grid: at 2x of 1080p colour (a 960x540 LR grid) it is
    # spread over 12 frames, at 2x of 720p over the usual 5; at 8x the grid matched on is
    # twice as fine as the LR grid.
    looks = []
    monkeypatch.setattr(alignment, 'frame_correlation', lambda *a: looks.append(1))
    for scale, shape, every in ((2, (540, 960), 12), (2, (360, 640), 5), (4, (270, 480), 5),
                                (8, (135, 240), 5), (8, (270, 480), 12)):
        aligner = Aligner(8, scale=scale)
        assert aligner.correction(shape) == (0.0, 0.0) and aligner.every == every
        looks.clear()
        depth, color = np.ones(shape, np.float32), np.zeros(shape + (3,), np.uint8)
        due = []
        for _ in range(3 * every):
            due.append(aligner.due())
            aligner.observe(depth, color)
        assert len(looks) == 3 and due == [i % every == 0 for i in range(3 * every)]
    assert alignment.look_every((540, 960), every=1) == 3
    # Depth that arrives on the LR grid is matched there, not on the finer grid.
    on_lr = Aligner(8, scale=8)
    assert on_lr.correction((270, 480), finer=1) == (0.0, 0.0) and on_lr.every == 5


def test_a_clear_offset_still_pooling_says_so_in_output_pixels():
    # Before min_frames the aligner left its reason empty, which /diagnostics shows as
    # 'auto: edges match' while the depth sat 8 px off.
    camera, lr, mask, color = _stripes()
    moved = reduce_registered(np.where(mask(8), 1.0, 2.0).astype(np.float32), camera, lr)
    aligner = Aligner(8, every=1, min_frames=3, scale=4)
    assert not aligner.observe(moved, color)
    assert aligner.estimate.reason.startswith('the edges match best 8.')
    assert aligner.estimate.reason.endswith(' px away: pooling (1 of 3 frames)')


def test_alignment_switched_off_and_back_on_starts_again(frames):
    # The pool and correction from before 'off' or 'fixed' are stale when 'auto' comes back
    # (the rig may have been recalibrated): one new frame among the old ones moved it.
    processor = FrameProcessor(BicubicUpsampler(4))
    _, result = _serve(processor, frames, Settings(), 20, move=(12, -8))
    assert processor.aligner.estimate.correction != (0.0, 0.0)
    assert any('check the camera' in a and 'calibration' in a for a in result.advice)
    _serve(processor, frames, Settings(alignment='off'), 1)
    assert processor.aligner.estimate.correction == (0.0, 0.0)
    _, result = _serve(processor, frames, Settings(), 1)
    assert result.offset == (0.0, 0.0) and processor.aligner.estimate.frames == 1
