"""
depth_sr_rig_bag: record one of the player's rigs into a rosbag2 bag, as a camera would.

    depth_sr_rig_bag --rig d435 --frames 8 --output d435_bag

Writes the rig's depth and colour images with their camera_info at 30 Hz (each with its own
stamp, depth first in each frame, as drivers do), and for a raw rig its depth-to-colour
transform on /tf_static through a camera_link, as the RealSense and Azure Kinect drivers
publish it: camera_link in REP 103's body axes (x forward, y left, z up), each optical frame
below it in the camera axes (z forward, x right, y down), so that rviz with camera_link as its
fixed frame shows the scene upright. A bag to try depth_sr_bag on without a camera.
"""

import argparse
import sys

from depth_sr_ros.bags import bag_writer, latched_qos, tf_static_message
from depth_sr_ros.console import interruptible, number
from depth_sr_ros.data.scene import (
    COLOR_FRAME, DEPTH_FRAME, rig_extrinsic, rig_frames, RIG_NAMES)
from depth_sr_ros.files import staged_folder
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.ros.conversions import camera_info_message, image_message
from rclpy.serialization import serialize_message

TOPICS = {'depth': '/camera/depth/image_raw', 'depth_info': '/camera/depth/camera_info',
          'color': '/camera/color/image_raw', 'color_info': '/camera/color/camera_info'}
PERIOD_NS = 33_333_333

# An optical frame's pose in camera_link (REP 103): its z (forward) is the link's x, its x
# (right) the link's -y, its y (down) the link's -z.
OPTICAL_IN_LINK = Transform((0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0))


def write_rig_bag(path, rig, frames, storage='mcap'):
    """Write ``frames`` frames of ``rig`` to a new bag at ``path``; return the frame count."""
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_HUMBLE)
    sequence, color_cam, depth_cam, depth_frame = rig_frames(rig, frames, 4)
    with bag_writer(path, storage) as writer:
        kinds = {'depth': 'Image', 'color': 'Image', 'depth_info': 'CameraInfo',
                 'color_info': 'CameraInfo'}
        out = {key: writer.add_connection(topic, f'sensor_msgs/msg/{kinds[key]}',
                                          typestore=store) for key, topic in TOPICS.items()}
        start = 1_700_000_000 * 10**9
        extrinsic = rig_extrinsic(rig)
        if extrinsic:
            tf = writer.add_connection('/tf_static', 'tf2_msgs/msg/TFMessage', typestore=store,
                                       offered_qos_profiles=[latched_qos()])
            depth_in_link = Transform.from_xyz_quaternion(extrinsic).then(OPTICAL_IN_LINK)
            writer.write(tf, start, tf_static_message(store, [
                ('camera_link', COLOR_FRAME, OPTICAL_IN_LINK.to_xyz_quaternion()),
                ('camera_link', DEPTH_FRAME, depth_in_link.to_xyz_quaternion())]))
        for i in range(frames):
            frame = sequence[i % len(sequence)]
            stamp_ns = start + (i + 1) * PERIOD_NS
            depth_stamp = divmod(stamp_ns + 1_000_000, 10**9)  # 1 ms after the colour
            color_stamp = divmod(stamp_ns, 10**9)
            messages = {
                'depth': image_message(frame['depth'], '16UC1', depth_frame, None),
                'color': image_message(frame['color'], 'rgb8', COLOR_FRAME, None),
                'depth_info': camera_info_message(depth_cam, depth_frame),
                'color_info': camera_info_message(color_cam, COLOR_FRAME)}
            for key, msg in messages.items():
                msg.header.stamp.sec, msg.header.stamp.nanosec = (
                    depth_stamp if key.startswith('depth') else color_stamp)
            for j, key in enumerate(('depth_info', 'depth', 'color_info', 'color')):
                writer.write(out[key], stamp_ns + 2_000_000 + j * 1000,
                             serialize_message(messages[key]))
    return frames


@interruptible('depth_sr_rig_bag')
def main(argv=None):
    """Entry point of depth_sr_rig_bag."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--rig', default='d435', choices=RIG_NAMES, help='camera to record')
    parser.add_argument('--frames', type=number(int, low=1), default=8,
                        help='frames to write (default 8)')
    parser.add_argument('--output', required=True,
                        help='bag folder to create (written beside it, moved in when complete)')
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'),
                        help='rosbag2 storage (default mcap)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output (once the new one is complete)')
    args = parser.parse_args(argv)
    try:
        with staged_folder(args.output, args.overwrite) as staging:
            count = write_rig_bag(staging, args.rig, args.frames, args.storage)
    except (OSError, ValueError) as error:
        print(f'depth_sr_rig_bag: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'depth_sr_rig_bag: interrupted; nothing written at {args.output}',
              file=sys.stderr)
        return 130
    print(f'wrote {args.output}: {count} frames of the {args.rig} rig ({args.storage})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
