"""
depth_sr_dds_check: how many 640x480 RGB images arrive between two processes, per QoS.

    depth_sr_dds_check --count 200 --rate 60

For each combination of QoS reliability (best effort, reliable) and Fast DDS transports
(the default, LARGE_DATA), a subscriber process and a publisher process are started with the
same settings on a private ROS domain; the publisher sends --count images at --rate once the
subscriber is matched, and the subscriber reports how many arrived and their latency. Prints a
markdown table. This is the measurement behind the QoS and transport advice in the README.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from depth_sr_ros.console import interruptible, number
import numpy as np

CASES = [(reliability, transports) for transports in ('DEFAULT', 'LARGE_DATA')
         for reliability in ('best_effort', 'reliable')]


def _qos(reliability):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    policy = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=10, reliability=policy)


def publish(args):
    """Run the publisher: wait for the subscriber, send the images, linger briefly."""
    import rclpy
    from depth_sr_ros.ros.conversions import image_message
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('dds_check_pub')
    pub = node.create_publisher(Image, 'dds_check', _qos(args.reliability))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = image_message(image, 'rgb8', '')
    end = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)  # let discovery settle on both sides
    for _ in range(args.count):
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(1.0 / args.rate)
    time.sleep(2.0)
    rclpy.try_shutdown()


def subscribe(args):
    """Run the subscriber: count arrivals until the end, print a JSON line."""
    import rclpy
    from depth_sr_ros.ros.conversions import stamp_ns
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('dds_check_sub')
    latencies = []

    def callback(msg):
        now = node.get_clock().now().nanoseconds
        latencies.append((now - stamp_ns(msg.header.stamp)) / 1e6)
    node.create_subscription(Image, 'dds_check', callback, _qos(args.reliability))
    end = time.monotonic() + 20 + args.count / args.rate + 5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({'received': len(latencies),
                      'median_ms': float(np.median(latencies)) if latencies else None}))
    rclpy.try_shutdown()


def run_case(reliability, transports, args, domain_id):
    """Start subscriber and publisher for one case; return the subscriber's JSON result."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    if transports == 'DEFAULT':
        env.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    else:
        env['FASTDDS_BUILTIN_TRANSPORTS'] = transports
    common = [sys.executable, '-m', 'depth_sr_ros.tools.dds_check', '--reliability', reliability,
              '--count', str(args.count), '--rate', str(args.rate)]
    # Each in a session of its own: a Ctrl-C in the terminal reaches this process alone,
    # which ends both.
    sub = subprocess.Popen(common + ['--role', 'sub'], env=env, stdout=subprocess.PIPE,
                           text=True, start_new_session=True)
    pub = None
    try:
        time.sleep(1.0)
        pub = subprocess.Popen(common + ['--role', 'pub'], env=env, start_new_session=True)
        pub.wait(timeout=120)
        out, _ = sub.communicate(timeout=120)
    finally:
        for process in (pub, sub):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    return json.loads(out.strip().splitlines()[-1])


@interruptible('depth_sr_dds_check')
def main(argv=None):
    """Entry point of depth_sr_dds_check."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--count', type=number(int, low=1), default=200,
                        help='images sent per case (default 200)')
    parser.add_argument('--rate', type=number(float, above=0), default=60.0,
                        help='images per second, Hz (default 60)')
    parser.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    parser.add_argument('--reliability', default='best_effort', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == 'pub':
        return publish(args)
    if args.role == 'sub':
        return subscribe(args)
    print(f'{args.count} images 640x480 rgb8 at {args.rate:g} Hz between two processes\n')
    print('| QoS | Fast DDS transports | received | median latency (ms) |')
    print('|---|---|---|---|')
    for i, (reliability, transports) in enumerate(CASES):
        result = run_case(reliability, transports, args, 190 + (os.getpid() + i) % 40)
        median = result['median_ms']
        print(f"| {reliability} | {transports} | {result['received']} / {args.count} | "
              f"{'-' if median is None else f'{median:.1f}'} |", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
