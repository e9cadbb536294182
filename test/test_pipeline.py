"""The per-pair work of the node, with a stand-in upsampler (no network, no DDS)."""

import threading

from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.conversions import image_to_array, ImageFormatError, metres_to_image
from depth_sr_ros.pipeline import (
    FrameProcessor, LatencyStats, LatestSlot, output_encoding, Settings)
from depth_sr_ros.player import camera_info
import numpy as np
import pytest
from sensor_msgs.msg import Image


def _pair(color_size=(160, 120), encoding='16UC1'):
    depth = np.full((30, 40), 2.0, np.float32)
    depth[:, 20:] = 3.0
    depth[0, 0] = np.nan
    header = Image().header
    header.frame_id = 'colour_frame'  # registered to the colour camera
    depth_msg = metres_to_image(depth, encoding, header)
    w, h = color_size
    color = np.zeros((h, w, 3), np.uint8)
    color_msg = Image(height=h, width=w, encoding='bgr8', step=3 * w, data=color.tobytes())
    color_msg.header.frame_id = 'colour_frame'
    infos = (camera_info(40, 30, 50.0, 'depth_frame'), camera_info(w, h, 50.0 * w / 40,
                                                                   'colour_frame'))
    return depth_msg, color_msg, infos


def test_exact_size_pair_uses_the_colour_camera_info():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert (result.depth.width, result.depth.height) == (160, 120)
    assert result.depth.encoding == '16UC1'
    assert result.depth.header.frame_id == 'colour_frame'
    np.testing.assert_allclose(result.camera_info.k, color_info.k)
    mm = image_to_array(result.depth)
    assert (mm[:4, :4] == 0).all() and mm[60, 10] == 2000 and mm[60, 150] == 3000
    assert result.notices == [] and result.warnings == [] and result.points is None


def test_colour_of_another_size_is_resampled_and_said_once():
    depth_msg, color_msg, (depth_info, color_info) = _pair(color_size=(200, 150))
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info, Settings())
    assert (result.depth.width, result.depth.height) == (160, 120)
    assert 'resampling it to 160x120' in result.notices[0]
    with pytest.raises(ImageFormatError, match='needs both camera_info'):
        processor.process(depth_msg, color_msg, None, color_info, Settings())


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
    with pytest.raises(ValueError):
        output_encoding('8UC1', '16UC1')


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
    for latency in (0.01, 0.02, 0.03, 0.04, 1.0):
        stats.add_output(latency)
    in_hz, out_hz, p50, p95 = stats.take(period=2.0)
    assert (in_hz, out_hz, p50) == (5.0, 2.5, 0.03)
    assert 0.04 < p95 <= 1.0
    assert stats.take(period=1.0)[:2] == (0.0, 0.0)


def test_problems_become_warnings_and_the_frame_is_still_served():
    depth_msg, color_msg, (depth_info, color_info) = _pair()
    color_info.k = [0.0] * 9
    depth_msg.header.frame_id = 'other_frame'
    processor = FrameProcessor(BicubicUpsampler(4))
    result = processor.process(depth_msg, color_msg, depth_info, color_info,
                               Settings(max_depth=1.0))
    assert result.depth.width == 160
    warnings = ' | '.join(result.warnings)
    assert 'colour camera_info K has non-positive focal length' in warnings
    assert 'depth has no valid pixel in [min_depth, max_depth] = [0.0, 1.0] m' in warnings
    np.testing.assert_allclose(result.camera_info.k[0], 200.0)  # from the depth camera_info
    assert "depth frame 'other_frame' differs from colour frame 'colour_frame'" in warnings
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


def test_a_depth_view_beyond_the_colour_image_is_refused():
    depth_msg, color_msg, (depth_info, color_info) = _pair(color_size=(200, 150))
    depth_info.k = [25.0, 0, 19.5, 0, 25.0, 14.5, 0, 0, 1]  # twice the colour's field of view
    with pytest.raises(ImageFormatError, match='reaches beyond the colour image'):
        FrameProcessor(BicubicUpsampler(4)).process(depth_msg, color_msg, depth_info,
                                                    color_info, Settings())
