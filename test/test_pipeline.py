"""The per-pair work of the node, with a stand-in upsampler (no network, no DDS)."""

import threading

from depth_sr_ros.alignment import whole_pixels
from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.geometry.camera import Camera, pinhole_camera
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.ros.conversions import (
    camera_info_message, image_to_array, ImageFormatError, metres_to_image)
from depth_sr_ros.ros.pipeline import (
    CameraInfoNotYet, expected_coverage, FrameProcessor, health, input_holes, LatencyStats,
    LatestSlot, output_encoding, Settings)
import numpy as np
import pytest
from sensor_msgs.msg import Image


def _pair(color_size=(160, 120), depth_size=(40, 30), encoding='16UC1', depth_frame='colour'):
    w, h = depth_size
    depth = np.full((h, w), 2.0, np.float32)
    depth[:, w // 2:] = 3.0
    depth[0, 0] = np.nan
    header = Image().header
    header.frame_id = depth_frame
    depth_msg = metres_to_image(depth, encoding, header)
    cw, ch = color_size
    color = np.zeros((ch, cw, 3), np.uint8)
    color_msg = Image(height=ch, width=cw, encoding='bgr8', step=3 * cw, data=color.tobytes())
    color_msg.header.frame_id = 'colour'
    infos = (camera_info_message(pinhole_camera(w, h, 50.0 * w / 40), depth_frame),
             camera_info_message(pinhole_camera(cw, ch, 50.0 * cw / 40), 'colour'))
    return depth_msg, color_msg, infos


def test_a_colour_lens_with_distortion_is_kept_with_a_notice():
    # depth_image_proc and rviz take depth as rectified; the output keeps the colour lens, and
    # says so in a notice (which the node logs once).
    from depth_sr_ros.ros.pipeline import LENS_NOTICE
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    plain = processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert LENS_NOTICE not in plain.notices
    color_info.distortion_model = 'plumb_bob'
    color_info.d = [-0.1, 0.01, 0.0, 0.0, 0.0]
    result = processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert LENS_NOTICE in result.notices
    assert list(result.camera_info.d) == [-0.1, 0.01, 0.0, 0.0, 0.0]


def test_depth_on_the_lr_grid_is_served_on_the_colour_grid_with_its_camera_info():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert (result.depth.width, result.depth.height) == (160, 120)
    assert result.depth.encoding == '16UC1'
    assert result.depth.header.frame_id == result.camera_info.header.frame_id == 'colour'
    np.testing.assert_allclose(result.camera_info.k, color_info.k)
    mm = image_to_array(result.depth)
    assert (mm[:4, :4] == 0).all() and mm[60, 10] == 2000 and mm[60, 150] == 3000
    assert 'lr_grid route' in result.notices[0]
    assert result.warnings == [] and result.points is None


@pytest.mark.parametrize('given, moved', [(2.0, 1), (6.0, 2), (1.0, 0), (-2.0, 0), (-3.0, -1)])
def test_depth_on_the_lr_grid_moves_by_whole_lr_pixels_and_says_so(given, moved):
    # A fixed offset of `given` output pixels at 4x: the nearest whole LR pixel (halves go
    # right), every value moved alike (no column left in place beside a moved one).
    depth = np.tile(np.arange(40, dtype=np.float32) / 10 + 1.0, (30, 1))
    depth_msg = metres_to_image(depth, '32FC1', Image().header)
    depth_msg.header.frame_id = 'colour'
    _, color_msg, (_, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    outputs = [processor.process(depth_msg, color_msg, None, color_info,
                                 Settings(alignment='fixed', alignment_offset=[offset, 0.0]))
               for offset in (0.0, given)]
    assert outputs[1].offset == (4.0 * moved, 0.0)
    still, shifted = (image_to_array(result.depth)[60] for result in outputs)
    np.testing.assert_allclose(shifted[20:140], still[20 + 4 * moved:140 + 4 * moved], atol=1e-5)


def test_depth_of_the_lr_size_with_other_intrinsics_is_registered_through_them():
    # A driver's depth in the colour's frame at the LR grid's size, but cut two pixels further
    # right (its principal point 2 px left of the LR grid's): its pixel u lies at LR x = u + 2.
    depth = np.tile(np.arange(40, dtype=np.float32) / 10 + 1.0, (30, 1))
    depth_msg = metres_to_image(depth, '32FC1', Image().header)
    depth_msg.header.frame_id = 'colour'
    _, color_msg, (depth_info, color_info) = _pair()
    cut = camera_info_message(pinhole_camera(40, 30, 50.0).moved(-2.0, 0.0), 'colour')
    processor = FrameProcessor(BicubicUpsampler(4))
    settings = Settings(alignment='off')
    same, moved = (processor.process(depth_msg, color_msg, info, color_info, settings)
                   for info in (depth_info, cut))
    assert 'lr_grid route' in same.notices[0] and 'registered route' in moved.notices[0]
    still, shifted = (image_to_array(result.depth)[60] for result in (same, moved))
    np.testing.assert_allclose(shifted[20:140], still[12:132], atol=1e-5)


def test_depth_registered_at_the_colour_size_is_reduced_not_the_colour_enlarged():
    # RealSense align_depth: 1280x720 depth next to 1280x720 colour (was: a 5120x2880 output).
    depth_msg, color_msg, (depth_info, color_info) = _pair((1280, 720), (1280, 720))
    result = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                         color_info, Settings())
    assert (result.depth.width, result.depth.height) == (1280, 720)
    assert (result.camera_info.width, result.camera_info.height) == (1280, 720)
    assert 'registered route' in result.notices[0] and '320x180 LR grid' in result.notices[0]
    assert 'a 2x model would use more' in result.notices[1]
    mm = image_to_array(result.depth)
    assert mm[360, 100] == 2000 and mm[360, 1200] == 3000
    # Without the depth camera_info the colour's is used (same size, same camera).
    again = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, None,
                                                        color_info, Settings())
    np.testing.assert_array_equal(image_to_array(again.depth), mm)
    # So is it with a depth camera_info that cannot be used (was: the frame skipped), said.
    depth_info.k = [0.0] * 9
    bad = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                      color_info, Settings())
    np.testing.assert_array_equal(image_to_array(bad.depth), mm)
    assert bad.warnings[0].startswith('depth camera_info K has non-positive focal length')
    assert "using the colour camera's" in bad.warnings[0]
    # Depth of another size needs its own camera_info: the frame is skipped, naming the depth.
    depth_msg, color_msg, (depth_info, color_info) = _pair((1280, 720), (640, 360))
    depth_info.k = [0.0] * 9
    with pytest.raises(ImageFormatError, match='^depth camera_info K has non-positive'):
        FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                    color_info, Settings())


def test_holes_of_depth_registered_at_the_colour_size_stay_holes_where_they_went():
    # A 2-pixel strip without a return (a thin dark object, a shadow's edge) in a wall at 3 m:
    # each LR pixel it crosses is still mostly valid, and the strip came back as 3 m.
    depth_msg, color_msg, (depth_info, color_info) = _pair((1280, 720), (1280, 720))
    depth = np.full((720, 1280), 3.0, np.float32)
    depth[:, 601:603] = np.nan
    depth[100:103, 200:400] = np.nan
    depth_msg = metres_to_image(depth, '16UC1', depth_msg.header)
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info,
                               Settings(alignment='off'))
    mm = image_to_array(result.depth)
    # Rows 100-102 make the LR row of rows 100-103 mostly invalid: all four stay holes.
    assert (mm[:, 601:603] == 0).all() and (mm[100:104, 200:400] == 0).all()
    assert (mm == 0).sum() == 720 * 2 + 4 * 200
    # The diagnostics expect the holes (the share the depth camera covers leaves them out).
    valid, covered = result.coverage
    assert valid == 1 - 2240 / (1280 * 720) and valid <= covered < 1 - 1440 / (1280 * 720)
    # Moved back by the alignment (the depth sat 8 px right of the colour), they move with it.
    moved = image_to_array(processor.process(
        depth_msg, color_msg, depth_info, color_info,
        Settings(alignment='fixed', alignment_offset=[8.0, 0.0])).depth)
    assert (moved[:, 593:595] == 0).all() and (moved[:, 601:603] > 0).all()


def test_kept_holes_move_to_the_whole_pixels_the_alignment_rounds_to():
    depth = np.ones((4, 12), np.float32)
    depth[:, 5] = np.nan
    for offset in (0.5, 1.5, 2.5, -1.5, -2.5):
        kept = input_holes(depth, (offset, 0.0))
        moved = int(whole_pixels((offset, 0.0))[0])
        assert kept.all(axis=0).tolist() == [c == 5 - moved for c in range(12)]


def test_a_colour_size_that_is_no_multiple_of_the_scale_is_padded_and_cropped_back():
    depth_msg, color_msg, (depth_info, color_info) = _pair((150, 110), (150, 110))
    result = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                         color_info, Settings())
    assert (result.depth.width, result.depth.height) == (150, 110)
    np.testing.assert_allclose(result.camera_info.k, color_info.k)
    assert '38x28 LR grid' in result.notices[0]


def test_output_size_shrinks_the_colour_grid_and_scales_its_intrinsics():
    depth_msg, color_msg, (depth_info, color_info) = _pair((320, 240), (320, 240))
    result = FrameProcessor(BicubicUpsampler(4), output_size=(160, 120)).process(
        depth_msg, color_msg, depth_info, color_info, Settings())
    assert (result.depth.width, result.depth.height) == (160, 120)
    assert (result.camera_info.width, result.camera_info.height) == (160, 120)
    k = np.reshape(result.camera_info.k, (3, 3))
    np.testing.assert_allclose([k[0, 0], k[0, 2], k[1, 2]], [200.0, 79.5, 59.5])
    np.testing.assert_allclose(np.reshape(result.camera_info.p, (3, 4))[:, :3], k)
    # A side below the scale is refused when the model is known, not on every frame.
    with pytest.raises(ValueError, match='output_size 3x120: each side at least the scale'):
        FrameProcessor(BicubicUpsampler(4), output_size=(3, 120))


def test_the_output_camera_info_keeps_the_colour_cameras_rectification():
    # A calibrated colour camera: P is not [K | 0] and R not the identity (camera_calibration
    # writes them). The output is on that camera's grid, so image_proc must rectify it with
    # the same R and P; shrunk by output_size, P is scaled as K is.
    depth_msg, color_msg, (depth_info, color_info) = _pair((320, 240), (80, 60))
    color_info.p = [190.0, 0.0, 161.0, 0.0, 0.0, 191.0, 118.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    color_info.r = [0.999, -0.03, 0.0, 0.03, 0.999, 0.0, 0.0, 0.0, 1.0]
    same = FrameProcessor(BicubicUpsampler(4)).process(
        depth_msg, color_msg, depth_info, color_info, Settings()).camera_info
    np.testing.assert_allclose(same.p, color_info.p)
    np.testing.assert_allclose(same.r, color_info.r)
    half = FrameProcessor(BicubicUpsampler(4), output_size=(160, 120)).process(
        depth_msg, color_msg, depth_info, color_info, Settings()).camera_info
    np.testing.assert_allclose(half.r, color_info.r)
    np.testing.assert_allclose(np.reshape(half.p, (3, 4))[:2, :3],
                               [[95.0, 0.0, 80.25], [0.0, 95.5, 58.75]])


def test_raw_depth_needs_a_transform_and_is_registered_with_one():
    depth_msg, color_msg, (depth_info, color_info) = _pair(depth_frame='depth')
    processor = FrameProcessor(BicubicUpsampler(4))
    with pytest.raises(ImageFormatError, match='no depth-to-colour transform'):
        processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    result = processor.process(depth_msg, color_msg, depth_info, color_info, Settings(),
                               Transform())
    assert result.depth.header.frame_id == 'colour'
    assert 'raw route' in result.notices[0]
    mm = image_to_array(result.depth)
    assert mm[60, 10] == 2000 and mm[60, 150] == 3000


def test_depth_is_never_published_without_its_camera_info():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    with pytest.raises(CameraInfoNotYet, match='never published without'):
        processor.process(depth_msg, color_msg, None, None, Settings())
    # Colour exactly 4x the depth in the same frame: the depth's camera_info, scaled, with a
    # warning that names the missing one.
    result = processor.process(depth_msg, color_msg, depth_info, None, Settings())
    assert result.camera_info.width == 160
    np.testing.assert_allclose(result.camera_info.k[0], 200.0)
    assert 'no colour camera_info has arrived' in result.warnings[0]
    # A colour camera_info for another resolution is not blamed on K.
    wrong = camera_info_message(pinhole_camera(320, 240, 400.0), 'colour')
    with pytest.raises(ImageFormatError,
                       match='camera_info is for 320x240 but the image is') as info:
        processor.process(depth_msg, color_msg, None, wrong, Settings())
    assert not isinstance(info.value, CameraInfoNotYet)  # a fault, not a camera_info to wait for
    # Depth of another size needs its own camera_info.
    depth_msg, color_msg, (depth_info, color_info) = _pair(depth_size=(80, 60))
    with pytest.raises(CameraInfoNotYet, match='needs the depth camera_info'):
        processor.process(depth_msg, color_msg, None, color_info, Settings())


def test_the_size_guard_refuses_large_grids():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4), max_output_pixels=160 * 119)
    with pytest.raises(ImageFormatError, match='output grid 160x120 .* exceeds max_output_'):
        processor.process(depth_msg, color_msg, depth_info, color_info, Settings())


def test_points_follow_the_undistorted_rays_of_a_distorted_colour_camera():
    depth_msg, color_msg, (depth_info, color_info) = _pair(encoding='32FC1')
    color_info.distortion_model, color_info.d = 'plumb_bob', [-0.3, 0.1, 0.0, 0.0, 0.0]
    settings = Settings(publish_points=True)
    result = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                         color_info, settings)
    assert list(result.camera_info.d) == [-0.3, 0.1, 0.0, 0.0, 0.0]
    points = np.frombuffer(bytes(result.points.data), '<f4').reshape(120, 160, 4)
    camera = Camera(160, 120, tuple(color_info.k), tuple(color_info.d))
    rays = camera.undistorted_rays()
    np.testing.assert_allclose(points[60, 5, 0], rays[60, 5, 0] * points[60, 5, 2], rtol=1e-5)
    # Barrel distortion: the corner pixel's ray is wider than a pinhole's.
    assert abs(rays[0, 0, 0]) > abs((0 - color_info.k[2]) / color_info.k[0])


def test_settings_range_encoding_and_points():
    depth_msg, color_msg, infos = _pair(encoding='32FC1')
    settings = Settings(max_depth=2.5, publish_points=True)
    result = FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, *infos,
                                                         settings)
    assert result.depth.encoding == '32FC1'
    metres = image_to_array(result.depth)
    assert np.isnan(metres[:, 90:]).all()  # 3 m is beyond max_depth
    assert result.points.width == 160 and result.points.height == 120
    assert output_encoding('input', 'mono16') == '16UC1'
    with pytest.raises(ImageFormatError):
        metres_to_image(metres, output_encoding('8UC1', '16UC1'), result.depth.header)


def test_latest_slot_keeps_only_the_newest_and_counts_replacements():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.get(timeout=0.1) == 2 and slot.replaced == 1
    assert slot.get(timeout=0.01) is None
    waiter = threading.Thread(target=lambda: slot.get(timeout=10))
    waiter.start()
    slot.close()
    waiter.join(timeout=2)
    assert not waiter.is_alive()


def test_latency_stats():
    stats = LatencyStats()
    for i in range(10):
        stats.add_input()
    for latency, valid in ((0.01, 0.5), (0.02, 0.6), (0.03, 0.7), (0.04, 0.8), (1.0, 0.9)):
        stats.add_output(latency, (valid, 0.9))
    period = stats.take(period=2.0)
    assert (period['input_hz'], period['output_hz'], period['p50']) == (5.0, 2.5, 0.03)
    assert 0.04 < period['p95'] <= 1.0
    assert period['valid_share'] == pytest.approx(0.7)
    assert period['expected_share'] == pytest.approx(0.9)
    idle = stats.take(period=1.0)
    assert (idle['pairs'], idle['outputs'], idle['output_hz']) == (0, 0, 0.0)
    assert np.isnan(idle['p50']) and np.isnan(idle['valid_share'])
    # Stamps of 0 (1.8e9 s ago) or seconds ahead of the node's clock are no latency: the
    # outputs count, the percentiles do not take them (they reported 1796454530569.7 ms). A
    # device clock a few ms ahead is a latency.
    assert not stats.add_output(1.8e9) and not stats.add_output(-5.0)
    assert stats.add_output(0.2) and stats.add_output(-0.004)
    odd = stats.take(period=1.0)
    assert odd['outputs'] == 4 and odd['p95'] == pytest.approx(0.2, abs=0.02)
    assert odd['p50'] == pytest.approx(0.098)


def _period(pairs=10, outputs=10, valid=0.9, expected=0.92):
    return {'pairs': pairs, 'outputs': outputs, 'valid_share': valid, 'expected_share': expected}


def test_health_warns_without_pairs_then_goes_stale_and_warns_on_lost_coverage():
    assert health(_period(), 0.1, 15.0) == ('OK', 'ok')
    level, message = health(_period(0, 0), 6.0, 15.0)
    assert level == 'WARN' and message == 'no depth/colour pair for 6.0 s'
    assert health(_period(0, 0), 15.0, 15.0)[0] == 'STALE'
    assert health(_period(outputs=0), 0.1, 15.0) == ('WARN', 'pairs arrive, none published')
    # A frame slower than the period is work in progress (a 1080p grid on a CPU takes
    # seconds): OK, until it takes as long as a stale input; frames that ended unpublished in
    # the period still warn.
    assert health(_period(outputs=0), 0.1, 15.0, 1.6) == (
        'OK', 'one frame in progress for 1.6 s')
    assert health(_period(outputs=0), 0.1, 15.0, 16.0)[0] == 'WARN'
    assert health(_period(outputs=0), 0.1, 15.0, 1.6, unpublished=2) == (
        'WARN', 'pairs arrive, none published')
    # The ToF rig at 4x before the mesh: 63 % valid where the depth camera covers 76 %.
    level, message = health(_period(valid=0.63, expected=0.76), 0.1, 15.0)
    assert level == 'WARN' and message.startswith('output 63% valid where the depth camera '
                                                  'covers 76%')
    # Nothing valid at all (millimetres as 32FC1: all beyond max_depth) used to be 'OK'.
    level, message = health(_period(valid=0.0, expected=0.0), 0.1, 15.0)
    assert level == 'WARN' and message.startswith('every output pixel is invalid')


def test_expected_coverage_counts_gaps_narrower_than_the_sample_spacing_as_covered():
    depth = np.ones((60, 80), np.float32)
    depth[:, 60:] = np.nan  # outside the depth camera's view
    depth[20:28, 10:18] = np.nan  # an occlusion, wider than the samples' spacing
    covered = (60 * 60 - 64) / 4800
    assert expected_coverage(depth, 1.0) == pytest.approx(covered)
    # Every other row lost: what one sample per LR pixel at most gave. Still covered.
    gridded = depth.copy()
    gridded[1::2] = np.nan
    assert np.isfinite(gridded).mean() < 0.4
    assert expected_coverage(gridded, 1.0) == pytest.approx(covered, abs=0.01)
    # Three rows in four lost: wider than the spacing of one sample per LR pixel, not wider
    # than that of 0.25 samples per LR pixel (they lie 2 LR pixels apart).
    sparse = depth.copy()
    sparse[np.arange(60) % 4 != 0] = np.nan
    assert expected_coverage(sparse, 1.0) < 0.3
    # (The bottom rows after the last sample, and the occlusion widened to the samples
    # around it, stay out.)
    assert covered - 0.05 < expected_coverage(sparse, 0.25) < covered


def test_problems_become_warnings_and_the_frame_is_still_served():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    color_info.k = [0.0] * 9
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info,
                               Settings(max_depth=1.0))
    assert result.depth.width == 160
    warnings = ' | '.join(result.warnings)
    assert 'colour camera_info K has non-positive focal length' in warnings
    assert 'depth has no valid pixel in [min_depth, max_depth] = [0.1, 1.0] m' in warnings
    np.testing.assert_allclose(result.camera_info.k[0], 200.0)  # from the depth camera_info
    assert (image_to_array(result.depth) == 0).all()


def test_negative_and_out_of_range_depth_are_warned_not_served_as_valid():
    depth_msg, color_msg, (depth_info, color_info) = _pair(encoding='32FC1')
    depth = np.tile(np.linspace(1.0, 4.0, 40, dtype=np.float32), (30, 1))
    depth_msg = metres_to_image(depth, '32FC1', depth_msg.header)
    depth[0, :] = -1.0
    bad_msg = metres_to_image(depth, '32FC1', depth_msg.header)
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(bad_msg, color_msg, depth_info, color_info, Settings())
    assert result.warnings == ['32FC1 depth has negative values; they are treated as invalid']
    out = image_to_array(result.depth)
    assert np.isnan(out[:4]).all() and np.isfinite(out[8:]).any()
    # A deliberate range that cuts a few pixels is not a problem; one that cuts most is.
    few = processor.process(depth_msg, color_msg, depth_info, color_info,
                            Settings(max_depth=3.7))
    assert few.warnings == []
    most = processor.process(depth_msg, color_msg, depth_info, color_info,
                             Settings(max_depth=1.5))
    assert len(most.warnings) == 1 and 'most measured depth is outside' in most.warnings[0]


def test_static_extrinsics_give_the_fixed_transform_or_the_tree_or_say_why_not():
    from depth_sr_ros.ros.extrinsics import StaticExtrinsics
    fixed = Transform(translation=(0.02, 0.0, 0.0))
    assert StaticExtrinsics(fixed).lookup('depth', 'colour') == (fixed, '')
    depth_in_link = Transform(translation=(0.0, 0.01, 0.0))
    color_in_link = Transform(translation=(0.03, 0.0, 0.0))
    tree = StaticExtrinsics(edges={('link', 'depth'): depth_in_link,
                                   ('link', 'colour'): color_in_link}, remedy='add it')
    found, reason = tree.lookup('depth', 'colour')
    assert reason == ''
    np.testing.assert_allclose(found.apply([[0.0, 0.0, 1.0]]), [[-0.03, 0.01, 1.0]])
    assert tree.lookup('depth', 'elsewhere') == (
        None, "no transform from depth frame 'depth' to colour frame 'elsewhere': add it")


def test_frame_ids_without_a_name_or_with_a_ros1_slash_pick_the_route_the_user_meant():
    from depth_sr_ros.ros.conversions import stamp_ns
    from depth_sr_ros.ros.extrinsics import StaticExtrinsics
    from depth_sr_ros.ros.sync import CameraInfoStore

    def run(depth_frame, color_frame, extrinsics):
        depth_msg, color_msg, (depth_info, color_info) = _pair(depth_frame=depth_frame)
        color_msg.header.frame_id = color_frame
        infos = []
        for info, msg in ((depth_info, depth_msg), (color_info, color_msg)):
            store = CameraInfoStore()
            store.add(info, stamp_ns(msg.header.stamp))
            infos.append(store)
        return FrameProcessor(BicubicUpsampler(4)).process_pair(
            depth_msg, color_msg, *infos, Settings(), extrinsics)
    moved = Transform(translation=(0.05, 0.0, 0.0))
    # An empty depth frame_id with depth_to_color given: the depth is raw, as the user said.
    # (It used to count as the colour's frame, and the transform went unused without a word.)
    result = run('', 'colour', StaticExtrinsics(moved))
    assert 'raw route' in result.notices[0]
    assert not any('no frame_id' in w for w in result.warnings)
    result = run('', 'colour', StaticExtrinsics())
    assert result.notices[0].count('raw route') == 0
    # Without it the depth counts as registered, and the user hears what was assumed (raw
    # depth from a driver would be registered wrong without a word).
    assert any('the depth image has no frame_id, so the depth is taken as registered' in w
               for w in result.warnings), result.warnings
    result = run('camera_depth_optical_frame', '', StaticExtrinsics())
    assert result.depth.header.frame_id == 'camera_depth_optical_frame'
    said = ('the colour image has no frame_id, so the depth is taken as registered to the '
            'colour camera and the output is in the frame of the depth (frame '
            "'camera_depth_optical_frame')")
    assert any(said in w for w in result.warnings), result.warnings
    both_unnamed = run('', '', StaticExtrinsics())
    assert not any('no frame_id' in w for w in both_unnamed.warnings)
    # One frame, and a depth_to_color: the driver registered the depth; the user hears so.
    result = run('colour', 'colour', StaticExtrinsics(moved))
    assert 'raw route' not in result.notices[0]
    assert any('depth_to_color is not used' in n for n in result.notices)
    # ROS 1 names: '/colour' is 'colour', and the output names it as ROS 2's tf2 does.
    result = run('/colour', 'colour', StaticExtrinsics())
    assert 'raw route' not in result.notices[0]
    assert run('colour', '/colour', StaticExtrinsics()).depth.header.frame_id == 'colour'
    tree = StaticExtrinsics(edges={('colour', 'depth'): moved})
    assert 'raw route' in run('/depth', '/colour', tree).notices[0]
    tree = StaticExtrinsics(edges={('/colour', '/depth'): moved})  # a ROS 1 bag's /tf_static
    assert 'raw route' in run('depth', 'colour', tree).notices[0]
    # Raw depth registered to a colour image without a frame_id is not in the depth's frame.
    result = run('depth', '', StaticExtrinsics(moved))
    assert 'raw route' in result.notices[0] and result.depth.header.frame_id == ''
    assert any('the colour image has no frame_id' in w for w in result.warnings)


def test_a_new_model_warms_up_at_the_lr_size_the_camera_gives_its_own_scale():
    # A switch from a 4x to an 8x model warmed up at the 4x LR size: four times the pixels,
    # and a compile or CUDA graph built for a size no frame has.
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    assert processor.lr_shape(8) is None  # no frame yet: the predictor's default size
    processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert processor.lr_shape(4) == (30, 40)
    assert processor.lr_shape(8) == (15, 20) and processor.lr_shape(2) == (60, 80)


def test_a_grey_colour_image_gives_grey_points_when_points_rgb_asks_for_colour():
    # mono8 colour used to give an x, y, z cloud without a word under points_rgb.
    depth_msg, _, (depth_info, color_info) = _pair()
    grey = np.arange(160 * 120, dtype=np.uint32).reshape(120, 160).astype(np.uint8)
    color_msg = Image(height=120, width=160, encoding='mono8', step=160, data=grey.tobytes())
    color_msg.header.frame_id = 'colour'
    result = FrameProcessor(BicubicUpsampler(4)).process(
        depth_msg, color_msg, depth_info, color_info,
        Settings(publish_points=True, points_rgb=True))
    assert [f.name for f in result.points.fields] == ['x', 'y', 'z', 'rgb']
    packed = np.frombuffer(bytes(result.points.data), np.uint32).reshape(120, 160, 4)[:, :, 3]
    np.testing.assert_array_equal(packed, grey.astype(np.uint32) * 0x010101)
