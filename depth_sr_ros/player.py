"""
depth_sr_player: publish a short RGB-D sequence the way a camera driver does.

The sequence is made from the sample pair shipped in the package (Middlebury "Art"): a
viewpoint that pans and zooms over it, resampled to a 640x480 colour camera. Each frame is
published as a registered depth camera would: 16UC1 depth in millimetres at 1/scale of the
colour size (bicubic downscaling, the degradation the models were trained on), rgb8 colour,
and both CameraInfos, with the depth stamp jittered against the colour stamp. The frames are
computed once at start-up (``make_sequence``), so publishing costs only the messages.
"""

import sys

import cv2
from depth_sr_ros.conversions import metres_to_image
from depth_sr_ros.data.degradations import bicubic_downsample
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair, SAMPLE_DIR
from depth_sr_ros.ros_entry import run_node
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

COLOR_SIZE = (640, 480)  # width, height of the simulated colour camera
FOCAL = 525.0  # pixels, a Kinect-like field of view at 640x480


def camera_info(width, height, focal, frame_id):
    """Return a pinhole CameraInfo with the principal point at the image centre."""
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = width, height
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info.k = [focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def make_sequence(frames, scale):
    """
    Return ``frames`` (depth_lr metres, colour RGB uint8, depth_hr metres) along a camera path.

    The path is a smooth loop: a 4:3 window that pans and zooms over the sample and is
    resampled to COLOR_SIZE, so consecutive frames differ like a hand-held camera's.
    """
    width, height = COLOR_SIZE
    if width % scale or height % scale:
        raise ValueError(f'scale {scale} does not divide the colour size {width}x{height}')
    pair = load_pair(SAMPLE_DIR, 'art')
    depth = disparity_to_metres(pair['depth'])
    rgb = pair['rgb']
    h, w = depth.shape
    out = []
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        win_w = w * (0.85 + 0.1 * np.sin(phase))
        win_h = win_w * 3 / 4
        x0 = (w - win_w) * (0.5 + 0.5 * np.cos(phase))
        y0 = (h - win_h) * (0.5 + 0.5 * np.sin(2 * phase))
        affine = np.array([[win_w / width, 0, x0], [0, win_h / height, y0]])
        flags = cv2.WARP_INVERSE_MAP
        color = cv2.warpAffine(rgb, affine, COLOR_SIZE, flags=cv2.INTER_LINEAR | flags,
                               borderMode=cv2.BORDER_REPLICATE)
        depth_hr = cv2.warpAffine(depth, affine, COLOR_SIZE, flags=cv2.INTER_NEAREST | flags,
                                  borderMode=cv2.BORDER_REPLICATE)
        out.append((bicubic_downsample(depth_hr, scale), color, depth_hr))
    return out


class Player(Node):
    """Publishes the sequence on depth/image_raw, color/image_raw and their camera_info."""

    def __init__(self, **kwargs):
        """Declare parameters, prepare the frames and start the timer."""
        super().__init__('depth_sr_player', **kwargs)

        def param(name, default, description):
            return self.declare_parameter(
                name, default, ParameterDescriptor(description=description,
                                                   read_only=True)).value
        rate = param('rate', 30.0, 'frames per second')
        self.scale = param('scale', 4, 'colour size / depth size (640x480 colour)')
        frames = param('frames', 60, 'frames in the loop')
        self.jitter = param('jitter', 0.003, 'depth stamp = colour stamp + uniform(+-jitter) s')
        self.frame_id = param('frame_id', 'camera_color_optical_frame', 'frame of both images')
        reliable = param('reliable', False, 'publish reliable instead of best effort')
        self.max_frames = param('max_frames', 0, 'stop after this many frames; 0 = forever')
        if rate <= 0 or frames < 1:
            raise ValueError('rate must be positive and frames at least 1')
        self.sequence = make_sequence(frames, self.scale)
        qos = (QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable
               else qos_profile_sensor_data)
        self.pub_depth = self.create_publisher(Image, 'depth/image_raw', qos)
        self.pub_color = self.create_publisher(Image, 'color/image_raw', qos)
        self.pub_depth_info = self.create_publisher(CameraInfo, 'depth/camera_info', qos)
        self.pub_color_info = self.create_publisher(CameraInfo, 'color/camera_info', qos)
        width, height = COLOR_SIZE
        self.color_info = camera_info(width, height, FOCAL, self.frame_id)
        self.depth_info = camera_info(width // self.scale, height // self.scale,
                                      FOCAL / self.scale, self.frame_id)
        self.rng = np.random.default_rng(0)
        self.index = 0
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(
            f'publishing {frames} frames in a loop at {rate} Hz: colour {width}x{height} rgb8, '
            f'depth {width // self.scale}x{height // self.scale} 16UC1, '
            f"{'reliable' if reliable else 'best effort'}")

    def _tick(self):
        if self.max_frames and self.index >= self.max_frames:
            return
        depth_lr, color, _ = self.sequence[self.index % len(self.sequence)]
        self.index += 1
        now = self.get_clock().now()
        color_stamp = now.to_msg()
        depth_stamp = (now + Duration(
            nanoseconds=int(self.rng.uniform(-self.jitter, self.jitter) * 1e9))).to_msg()
        color_msg = Image(height=color.shape[0], width=color.shape[1], encoding='rgb8',
                          is_bigendian=0, step=color.shape[1] * 3, data=color.tobytes())
        color_msg.header.stamp = color_stamp
        color_msg.header.frame_id = self.frame_id
        depth_msg = metres_to_image(depth_lr, '16UC1', color_msg.header)
        depth_msg.header.stamp = depth_stamp
        for info, stamp, pub in ((self.color_info, color_stamp, self.pub_color_info),
                                 (self.depth_info, depth_stamp, self.pub_depth_info)):
            info.header.stamp = stamp
            pub.publish(info)
        self.pub_color.publish(color_msg)
        self.pub_depth.publish(depth_msg)


def main(args=None):
    """Entry point of depth_sr_player."""
    return run_node(Player, 'depth_sr_player', ValueError, args)


if __name__ == '__main__':
    sys.exit(main())
