"""
A node under test on real rclpy/DDS: the node and a probe node in this process, own domain.

Used by test_node.py and test_bad_input.py through the ``graph`` and ``model_path`` fixtures of
conftest.py.
"""

import os
import threading
import time

from depth_sr_ros.geometry.camera import pinhole_camera
from depth_sr_ros.inference import Acceleration, Predictor
from depth_sr_ros.ros.conversions import camera_info_message, image_message, metres_to_image
from depth_sr_ros.ros.node import DepthSrNode
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image


def float32_predictor(path):
    """Return the Predictor of a model file in float32, as the test graph's node runs it."""
    return Predictor.from_checkpoint(path, device='cpu', acceleration=Acceleration('float32'))


DOMAIN_ID = 100 + os.getpid() % 50  # parallel runs do not see each other (100-149)
SCALE = 4
TINY = {'scale': SCALE, 'channels': 8, 'growth': 4, 'rdb_layers': 1, 'num_blocks': 1}


class Graph:
    """A running node under test, a probe node, and an executor thread spinning both."""

    def __init__(self, model_path, overrides=()):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        # float32 unless a test says otherwise: these tests compare the node's output with the
        # Predictor's to the millimetre, which bfloat16 arithmetic does not promise.
        params = [Parameter('model_path', value=model_path),
                  Parameter('precision', value='float32'), *overrides]
        self.node = DepthSrNode(context=self.context, parameter_overrides=params)
        self.probe = Node('probe', context=self.context)
        self.received = {'image': [], 'info': []}
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.probe.create_subscription(Image, 'depth_sr/image', self.received['image'].append,
                                       reliable)
        self.probe.create_subscription(CameraInfo, 'depth_sr/camera_info',
                                       self.received['info'].append, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def publishers(self, qos):
        make = self.probe.create_publisher
        return {name: make(kind, topic, qos) for name, kind, topic in (
            ('depth', Image, 'depth/image_raw'), ('color', Image, 'color/image_raw'),
            ('depth_info', CameraInfo, 'depth/camera_info'),
            ('color_info', CameraInfo, 'color/camera_info'))}

    def connect(self, qos):
        """Return the probe's publishers of the four inputs once the node subscribes to all."""
        pubs = self.publishers(qos)
        wait_for_subscribers(self, pubs)
        return pubs

    def wait_for(self, what, count, timeout=20.0):
        end = time.monotonic() + timeout
        while len(self.received[what]) < count and time.monotonic() < end:
            time.sleep(0.02)
        return self.received[what]

    def close(self):
        self.node.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)


def make_pair(stamp_ns, depth_stamp_offset_ns=0):
    """Return (depth 16UC1 msg, colour rgb8 msg, depth metres, colour array, infos)."""
    rng = np.random.default_rng(stamp_ns)  # every frame differs
    depth = rng.uniform(0.8, 3.0, (30, 40)).astype(np.float32)
    depth = np.round(depth * 1000) / 1000  # what survives millimetres
    depth[5:8, 10:14] = np.nan  # a hole, sent as 0
    color = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    color_msg = image_message(color, 'rgb8', 'colour_optical')
    color_msg.header.stamp.sec, color_msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    depth_msg = metres_to_image(depth, '16UC1', type(color_msg.header)())
    depth_msg.header.frame_id = 'colour_optical'  # registered to the colour camera
    depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec = divmod(
        stamp_ns + depth_stamp_offset_ns, 10**9)
    infos = (camera_info_message(pinhole_camera(40, 30, 50.0), 'colour_optical'),
             camera_info_message(pinhole_camera(160, 120, 200.0), 'colour_optical'))
    return depth_msg, color_msg, depth, color, infos


def send(pubs, stamp_ns, depth_offset_ns=0):
    depth_msg, color_msg, depth, color, (depth_info, color_info) = make_pair(
        stamp_ns, depth_offset_ns)
    pubs['depth_info'].publish(depth_info)
    pubs['color_info'].publish(color_info)
    pubs['color'].publish(color_msg)
    pubs['depth'].publish(depth_msg)
    return depth_msg, depth, color


def wait_for_subscribers(graph, pubs):
    end = time.monotonic() + 10
    while time.monotonic() < end and any(p.get_subscription_count() == 0 for p in pubs.values()):
        time.sleep(0.05)
