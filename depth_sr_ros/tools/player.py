"""
depth_sr_player: publish a short RGB-D sequence the way a camera driver does.

``rig`` chooses which camera it imitates:

- ``registered`` (default): depth registered to the colour camera at 1/scale of its 640x480
  (a viewpoint that pans and zooms over the bundled Middlebury "Art" pair; bicubic downscaling,
  the degradation the models were trained on);
- ``aligned``, ``d435``, ``azure_nfov``, ``tof``: the rigs of data/scene.py, rendered from one
  3D scene: depth at the colour's resolution in the colour frame (aligned), or in the depth
  camera's own frame, resolution and lens (the others). Their depth-to-colour transform is the
  node's ``depth_to_color`` parameter (player.launch.py passes it; ``rig_extrinsic`` gives it).
  The depth in the colour frame is published on ``truth/depth`` (32FC1, colour stamp) for
  depth_sr_live_demo's error picture.

``bag`` plays a recorded rosbag2 bag instead (the topics ``bag_depth``, ``bag_color``,
``bag_depth_info`` and ``bag_color_info``, or its one plausible depth/colour/camera_info set,
as depth_sr_bag picks it) in a loop at its recorded pace, with fresh stamps (the bag's offsets
kept) or its own (``bag_stamps``). A raw bag's depth_to_color from its /tf_static is logged.

Depth is 16UC1 millimetres; colour rgb8; each image with its CameraInfo and its own stamp, the
depth's jittered against the colour's. The frames are made once at start-up and each is
serialized on its first use; publishing then only patches the stamps (``restamp``).
"""

import struct
import sys

from depth_sr_ros.data.scene import COLOR_FRAME, rig_frames, RIG_NAMES
from depth_sr_ros.ros.conversions import camera_info_message, image_message
from depth_sr_ros.ros.entry import run_node
from depth_sr_ros.ros.recording import KINDS, read_recording, TOPIC_PARAMETERS
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

RIG_RATE = 30.0  # frames per second of a rig by default


def _stamp_layout(raw):
    """Return the struct format of a serialized message's header stamp (see restamp)."""
    # The encapsulation's low bit is the byte order (CDR_LE, PL_CDR_LE, XCDR2 LE: 1).
    return '<iI' if raw[1] & 1 else '>iI'


def header_stamp_ns(raw):
    """Return the header stamp, in nanoseconds, of a serialized message (see restamp)."""
    sec, nanosec = struct.unpack_from(_stamp_layout(raw), raw, 4)
    return sec * 1_000_000_000 + nanosec


def restamp(raw, stamp):
    """
    Return a serialized message with its header stamp replaced by ``stamp``.

    For messages whose first field is a std_msgs/Header (Image, CameraInfo): the 4-byte CDR
    encapsulation is followed by the stamp's sec (int32) and nanosec (uint32), in the byte
    order the encapsulation names. Publishing such bytes saves serialising a 1 MB image on
    every frame: the player's own CPU time is what a camera driver's would be, small.
    """
    out = bytearray(raw)
    struct.pack_into(_stamp_layout(raw), out, 4, stamp.sec, stamp.nanosec)
    return bytes(out)


class Player(Node):
    """Publishes the sequence on depth/image_raw, color/image_raw and their camera_info."""

    def __init__(self, **kwargs):
        """Declare parameters, prepare the frames and start the timer."""
        super().__init__('depth_sr_player', **kwargs)

        def param(name, default, description):
            return self.declare_parameter(
                name, default, ParameterDescriptor(description=description,
                                                   read_only=True)).value
        rate = param('rate', RIG_RATE, 'frames per second (rigs; a bag plays at its own pace)')
        self.rig = param('rig', 'registered', f"camera to imitate: {', '.join(RIG_NAMES)}")
        self.scale = param('scale', 4, 'registered rig: colour size / depth size (640x480)')
        frames = param('frames', 60, 'frames in the loop (scene rigs render at most 8)')
        self.jitter = param('jitter', 0.003, 'depth stamp = colour stamp + uniform(+-jitter) s')
        reliable = param('reliable', True, 'publish reliable, as camera drivers do, which '
                                           'best-effort and reliable readers (rviz) receive; '
                                           'false: best effort, which only best-effort '
                                           'readers receive')
        self.max_frames = param('max_frames', 0, 'rigs: stop after this many frames (the '
                                                 'process exits); 0 = forever')
        bag = param('bag', '', 'play this rosbag2 bag (its depth, colour and camera_info '
                               'topics) in a loop instead of a rig')
        self.bag_stamps = param('bag_stamps', 'fresh', "'fresh' (now, keeping the bag's "
                                                       "offsets) or 'original' stamps")
        self.bag_topics = tuple(
            param(name, '', f"the bag's {what} topic; all four or none (the one plausible set)")
            for name, what in zip(TOPIC_PARAMETERS, ('depth', 'colour', 'depth camera_info',
                                                     'colour camera_info')))
        if rate <= 0 or frames < 1 or self.scale < 1:
            raise ValueError('rate must be positive, and frames and scale at least 1')
        qos = (QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable
               else qos_profile_sensor_data)
        if bag:
            if self.max_frames or rate != RIG_RATE:
                raise ValueError('rate and max_frames are for the rigs: a bag plays its '
                                 'messages at their recorded pace, in a loop')
            self._play_bag(bag, qos)
            return
        self.sequence, color_cam, depth_cam, self.depth_frame = rig_frames(
            self.rig, frames, self.scale)
        self.pub_depth = self.create_publisher(Image, 'depth/image_raw', qos)
        self.pub_color = self.create_publisher(Image, 'color/image_raw', qos)
        self.pub_depth_info = self.create_publisher(CameraInfo, 'depth/camera_info', qos)
        self.pub_color_info = self.create_publisher(CameraInfo, 'color/camera_info', qos)
        self.pub_truth = self.create_publisher(Image, 'truth/depth', qos)
        # Serialized once; each frame only patches the stamps (restamp).
        self.info_wire = (serialize_message(camera_info_message(color_cam, COLOR_FRAME)),
                          serialize_message(camera_info_message(depth_cam, self.depth_frame)))
        self.frame_wire = {}  # sequence index -> serialized (colour, depth) images
        self.rng = np.random.default_rng(0)
        self.index = 0
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(
            f"rig '{self.rig}': publishing {len(self.sequence)} frames in a loop at {rate} Hz: "
            f'colour {color_cam.width}x{color_cam.height} rgb8 in {COLOR_FRAME}, depth '
            f'{depth_cam.width}x{depth_cam.height} 16UC1 in {self.depth_frame}, '
            f"{'reliable' if reliable else 'best effort'}")

    def _play_bag(self, path, qos):
        """Publish a bag's depth, colour and camera_info messages at their recorded pace."""
        if self.bag_stamps not in ('fresh', 'original'):
            raise ValueError(f"bag_stamps must be 'fresh' or 'original', not {self.bag_stamps!r}")
        self.recording, topics, extrinsic = read_recording(path, self.get_logger().warning,
                                                           self.bag_topics)
        names = ('depth/image_raw', 'color/image_raw', 'depth/camera_info', 'color/camera_info')
        self.bag_pubs = [self.create_publisher(kind, name, qos)
                         for kind, name in zip(KINDS, names)]
        self.bag_start = self.get_clock().now().nanoseconds
        self.bag_next = 0
        self.bag_loop = 0
        self.create_timer(0.002, self._tick_bag)
        span = (self.recording[-1][0] - self.recording[0][0]) * 1e-9
        self.get_logger().info(
            f'playing {path} in a loop ({len(self.recording)} messages over {span:.1f} s, '
            f"{self.bag_stamps} stamps): {', '.join(topics)}"
            + (f'; its /tf_static gives depth_to_color: {extrinsic}' if extrinsic else ''))

    def _tick_bag(self):
        first = self.recording[0][0]
        span = self.recording[-1][0] - first + 33_000_000  # a frame's gap before looping
        elapsed = self.get_clock().now().nanoseconds - self.bag_start
        while True:
            entry = self.recording[self.bag_next]
            received, index = entry[:2]
            due = self.bag_loop * span + received - first
            if due > elapsed:
                return
            stamp = None
            if self.bag_stamps == 'fresh':  # a CompressedImage starts with a Header too
                stamp = Time(nanoseconds=self.bag_start + due + header_stamp_ns(entry.raw)
                             - received).to_msg()
            if entry.compressed:
                # Decoded as it goes out (a few ms an image): the bag stays as small in memory
                # as it is on disk.
                msg = entry.message()
                if stamp is not None:
                    msg.header.stamp = stamp
            else:  # the bag's own bytes, restamped
                msg = entry.raw if stamp is None else restamp(entry.raw, stamp)
            self.bag_pubs[index].publish(msg)
            self.bag_next += 1
            if self.bag_next == len(self.recording):
                self.bag_next = 0
                self.bag_loop += 1

    def _tick(self):
        if self.max_frames and self.index >= self.max_frames:
            # One period after the last frame: the process ends (run_node's clean exit).
            self.get_logger().info(f'sent {self.index} frames (max_frames): stopping')
            self.context.try_shutdown()
            return
        index = self.index % len(self.sequence)
        frame = self.sequence[index]
        self.index += 1
        now = self.get_clock().now()
        color_stamp = now.to_msg()
        depth_stamp = (now + Duration(
            nanoseconds=int(self.rng.uniform(-self.jitter, self.jitter) * 1e9))).to_msg()
        if index not in self.frame_wire:
            self.frame_wire[index] = (
                serialize_message(image_message(frame['color'], 'rgb8', COLOR_FRAME)),
                serialize_message(image_message(frame['depth'], '16UC1', self.depth_frame)))
        color, depth = self.frame_wire[index]
        color_info, depth_info = self.info_wire
        self.pub_color_info.publish(restamp(color_info, color_stamp))
        self.pub_depth_info.publish(restamp(depth_info, depth_stamp))
        self.pub_color.publish(restamp(color, color_stamp))
        self.pub_depth.publish(restamp(depth, depth_stamp))
        if self.pub_truth.get_subscription_count():  # only the live demo asks for it
            self.pub_truth.publish(image_message(frame['truth'], '32FC1', COLOR_FRAME,
                                                 color_stamp))


def main(args=None):
    """Entry point of depth_sr_player."""
    return run_node(Player, 'depth_sr_player', (ValueError, ParameterException), args,
                    'usage: depth_sr_player [--ros-args -p rig:=NAME -p rate:=HZ ...]\n' + __doc__)


if __name__ == '__main__':
    sys.exit(main())
