"""The bundled player: its sequence, and what it publishes over DDS."""

import os
import threading
import time

from depth_sr_ros.data.sequences import make_sequence
from depth_sr_ros.ros.conversions import depth_to_metres
from depth_sr_ros.tools.player import Player
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

DOMAIN_ID = 150 + os.getpid() % 20  # 150-169


def test_sequence_moves_and_keeps_the_geometry():
    frames = make_sequence(8, 4)
    depth_lr, color, depth_hr = frames[0]
    assert depth_lr.shape == (120, 160) and color.shape == (480, 640, 3)
    assert depth_hr.shape == (480, 640) and color.dtype == np.uint8
    assert 0.5 < np.nanmin(depth_hr) and np.nanmax(depth_hr) < 5.0  # metres
    assert not np.array_equal(frames[0][1], frames[2][1])  # the viewpoint moves


def test_player_publishes_like_a_camera_driver():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    player = Player(context=context, parameter_overrides=[
        Parameter('rate', value=20.0), Parameter('frames', value=4)])
    probe = Node('probe', context=context)
    got = {'depth/image_raw': [], 'color/image_raw': [], 'depth/camera_info': [],
           'color/camera_info': []}
    # A best-effort reader (as the node's) and a reliable one (as rviz's): drivers publish
    # reliable, which both receive.
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    for topic in got:
        kind = Image if topic.endswith('image_raw') else CameraInfo
        qos = reliable if topic.startswith('color') else qos_profile_sensor_data
        probe.create_subscription(kind, topic, got[topic].append, qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(player)
    executor.add_node(probe)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 15
        while time.monotonic() < end and min(len(v) for v in got.values()) < 3:
            time.sleep(0.05)
    finally:
        executor.shutdown()
        player.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
        thread.join(timeout=5)
    depth, color = got['depth/image_raw'][-1], got['color/image_raw'][-1]
    assert (depth.encoding, depth.width, depth.height) == ('16UC1', 160, 120)
    assert (color.encoding, color.width, color.height) == ('rgb8', 640, 480)
    assert depth.header.frame_id == color.header.frame_id
    assert np.nanmax(depth_to_metres(depth)) < 5.0
    info = got['depth/camera_info'][-1]
    assert (info.width, info.height) == (160, 120) and info.k[0] > 0
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got['depth/image_raw']]
    assert len(set(stamps)) == len(stamps)


@pytest.mark.parametrize('name,value', [('scale', 0), ('scale', -4), ('rate', 0.0),
                                        ('frames', 0)])
def test_a_bad_parameter_is_refused_at_start_up(name, value):
    # A ValueError: depth_sr_player's one start-up error line and exit status 1 (run_node).
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        with pytest.raises(ValueError, match='rate must be positive, and frames and scale at '
                                             'least 1'):
            Player(context=context, parameter_overrides=[Parameter(name, value=value)])
    finally:
        rclpy.try_shutdown(context=context)


def test_restamp_replaces_only_the_stamp_of_a_serialized_message():
    from builtin_interfaces.msg import Time as TimeMsg
    from depth_sr_ros.ros.conversions import image_message
    from depth_sr_ros.tools.player import header_stamp_ns, restamp
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage
    image = image_message(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), 'rgb8', 'cam')
    info = CameraInfo(width=4, height=3)
    info.header.frame_id = 'cam'
    packed = CompressedImage(format='png', data=bytes(8))  # a bag's compressed image
    packed.header.frame_id = 'cam'
    stamp = TimeMsg(sec=1_700_000_123, nanosec=456_789_012)
    for msg in (image, info, packed):
        moved = restamp(serialize_message(msg), stamp)
        assert header_stamp_ns(moved) == 1_700_000_123_456_789_012
        again = deserialize_message(moved, type(msg))
        assert again.header.stamp == stamp and again.header.frame_id == 'cam'
        msg.header.stamp = stamp
        assert again == msg


def test_a_missing_bag_is_one_line_and_exit_1(tmp_path):
    import os
    import subprocess
    import sys
    from node_graph import DOMAIN_ID
    done = subprocess.run(
        [sys.executable, '-m', 'depth_sr_ros.tools.player', '--ros-args', '-p',
         f'bag:={tmp_path / "nonexistent"}'], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID)))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'does not exist' in lines[0], done.stderr


def _player(*params):
    import subprocess
    import sys
    from node_graph import DOMAIN_ID
    command = [sys.executable, '-m', 'depth_sr_ros.tools.player', '--ros-args']
    for param in params:
        command += ['-p', param]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID)))


def test_max_frames_ends_the_player_and_a_bag_refuses_the_rig_options(tmp_path):
    # max_frames said 'stop after this many frames' and the player ran on; a bag ignored rate
    # and max_frames without a word.
    done = _player('frames:=2', 'max_frames:=3', 'rate:=20.0')
    assert done.returncode == 0, done.stderr
    assert 'sent 3 frames (max_frames): stopping' in done.stderr
    for param in ('max_frames:=3', 'rate:=5.0'):
        done = _player(f'bag:={tmp_path}', param)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and 'rate and max_frames are for the rigs' in lines[0], lines
