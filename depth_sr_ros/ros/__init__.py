"""The ROS 2 side: message conversions, pairing, the per-frame pipeline and the node."""

import os

from depth_sr_ros import console

# Fast DDS's transports (FASTDDS_BUILTIN_TRANSPORTS) for processes on one computer: the value
# the package's own processes use (the player launch file, the demos, the benchmark, the soak,
# the tests) and the one docs/dds.md gives users whose camera driver and node share a computer.
# Shared memory alone, with messages up to 4 MB whole (a 1280x720 rgb8 image is 2.8 MB): it
# carries camera images without loss. LARGE_DATA does too, but now and then one of its
# participants receives nothing for as long as it runs (docs/dds.md, "A participant that hears
# nothing"); shared memory alone never did. Jazzy's Fast DDS (2.14) and Kilted's (3.2) read
# the options.
ONE_COMPUTER_TRANSPORTS = 'SHM?max_msg_size=4MB&sockets_size=8MB'

# The end of the node's /diagnostics status name ('<node's full name>: depth super-resolution'):
# how the tools that watch a node find its status.
DIAGNOSTICS_NAME = ': depth super-resolution'

# The argparse type of a tool's --domain-id: the ROS domains that DDS can serve (0-232).
DOMAIN_ID = console.number(int, low=0, high=232)


def frame_name(frame_id):
    """Return ``frame_id`` as tf2 in ROS 2 names frames: without the leading '/' of ROS 1 bags."""
    return frame_id[1:] if frame_id.startswith('/') else frame_id


def same_frame(depth_frame, color_frame):
    """
    Return True when depth and colour are in one optical frame.

    An empty frame_id counts as the other's (the player and some bags leave it empty); a
    leading '/' (ROS 1 bags) does not count (frame_name).
    """
    depth_frame, color_frame = frame_name(depth_frame), frame_name(color_frame)
    return not depth_frame or not color_frame or depth_frame == color_frame


def domain_id(low, count):
    """
    Return the ROS domain for the processes a tool starts: ROS_DOMAIN_ID when it is set.

    Otherwise one of ``count`` domains from ``low`` on, chosen by the process id, so that two
    tools run at once do not see each other.
    """
    value = os.environ.get('ROS_DOMAIN_ID', '').strip()
    return int(value) if value.isdigit() else low + os.getpid() % count
