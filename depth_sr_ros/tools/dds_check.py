"""
depth_sr_dds_check: how many 640x480 RGB images arrive between two processes, per QoS.

    depth_sr_dds_check --count 200 --rate 60
    depth_sr_dds_check --starts 40

For each combination of QoS reliability (best effort, reliable) and Fast DDS transports
(the default, LARGE_DATA, and shared memory alone with 4 MB messages:
ros.ONE_COMPUTER_TRANSPORTS), a subscriber process and a publisher process are started with the
same settings on a private ROS domain; the publisher sends --count images at --rate once the
subscriber is matched, and the subscriber reports how many arrived and their latency. Prints a
markdown table. This is the measurement behind the QoS and transport advice in the README.

--starts N measures something else: how often two processes that start one after the other
never connect. For each of STARTS_TRANSPORTS in turn, N times, a publisher streaming the
image best effort and a subscriber start on a fresh ROS domain, in alternating order and 0-2 s
apart; a start fails when the subscriber has received nothing FIRST_IMAGE_WAIT_S after both
started. Prints the failed starts and the median time to the first image per transport,
counted from the launch of the later process (its Python start-up included).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

from depth_sr_ros.console import INTERRUPTED, interruptible, number, stop_processes
from depth_sr_ros.ros import ONE_COMPUTER_TRANSPORTS
import numpy as np

CASES = [(reliability, transports)
         for transports in ('DEFAULT', 'LARGE_DATA', ONE_COMPUTER_TRANSPORTS)
         for reliability in ('best_effort', 'reliable')]
STARTS_TRANSPORTS = ('LARGE_DATA', 'LARGE_DATA?tcp_negotiation_timeout=200',
                     ONE_COMPUTER_TRANSPORTS)
# --starts gives each start a fresh ROS domain, in turn from 50 to 89: a range no test module
# uses (ROS_DOMAIN_ID is not honoured here, since one domain would be reused at once).
STARTS_DOMAINS = (50, 40)
FIRST_IMAGE_WAIT_S = 20.0


def _qos(reliability):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    policy = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=10, reliability=policy)


def _image_message():
    """Return the rgb8 Image every publisher here sends: 640x480 random colours."""
    from depth_sr_ros.ros.conversions import image_message
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return image_message(image, 'rgb8', '')


def publish(args):
    """Run the publisher: wait for the subscriber, send the images, linger briefly."""
    import rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('dds_check_pub')
    pub = node.create_publisher(Image, 'dds_check', _qos(args.reliability))
    msg = _image_message()
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


def stream(args):
    """Run a publisher that sends the image best effort at --rate until Ctrl-C."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    # Without rclpy's handlers: Ctrl-C is Python's KeyboardInterrupt, not a shut-down context
    # under a publish call.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('dds_check_stream')
    pub = node.create_publisher(Image, 'dds_check', _qos('best_effort'))
    msg = _image_message()
    try:
        while True:
            pub.publish(msg)
            time.sleep(1.0 / args.rate)
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()


def first_image(args):
    """Run a subscriber that waits for one image: print when it came (time.monotonic) or null."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('dds_check_first')
    arrived = []
    node.create_subscription(Image, 'dds_check', lambda msg: arrived.append(time.monotonic()),
                             _qos('best_effort'))
    end = time.monotonic() + FIRST_IMAGE_WAIT_S + 2.0 + 5.0
    try:
        while not arrived and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(json.dumps({'first': arrived[0] if arrived else None}), flush=True)
    finally:
        rclpy.try_shutdown()


def one_start(transports, args, domain_id, subscriber_first, gap):
    """
    Start a subscriber and a streaming publisher ``gap`` s apart: the first image's delay.

    :return: seconds from the later start to the first image, or None when none came within
        FIRST_IMAGE_WAIT_S.
    """
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), FASTDDS_BUILTIN_TRANSPORTS=transports)
    common = [sys.executable, '-m', 'depth_sr_ros.tools.dds_check', '--rate', str(args.rate)]
    roles = [['--role', 'first'], ['--role', 'stream']]
    processes = []
    try:
        for role in (roles if subscriber_first else roles[::-1]):
            if processes:
                time.sleep(gap)
            processes.append(subprocess.Popen(
                common + role, env=env, start_new_session=True,
                stdout=subprocess.PIPE if role[1] == 'first' else subprocess.DEVNULL, text=True))
        started = time.monotonic()
        sub = processes[0] if subscriber_first else processes[1]
        try:
            out, _ = sub.communicate(timeout=FIRST_IMAGE_WAIT_S + 30)
        except subprocess.TimeoutExpired:  # it answered, then hung leaving DDS
            sub.kill()
            out, _ = sub.communicate()
    finally:
        stop_processes(processes, timeout=5)
    answer = [line for line in out.splitlines() if line.startswith('{')]
    if not answer:  # not a failed start: the measuring process itself failed
        raise RuntimeError(f'the subscriber ({transports}) gave no answer, exit status '
                           f'{sub.returncode}; see its output above')
    first = json.loads(answer[-1])['first']
    if first is None or first - started > FIRST_IMAGE_WAIT_S:
        return None
    return max(0.0, first - started)


def count_starts(args):
    """Print the --starts table: failed starts and time to the first image per transport."""
    print(f'{args.starts} starts of a subscriber and a publisher of 640x480 rgb8 images at '
          f'{args.rate:g} Hz, best effort, per transport\n')
    print(f'| Fast DDS transports | starts | nothing received in {FIRST_IMAGE_WAIT_S:g} s | '
          'median s to the first image |')
    print('|---|---|---|---|')
    draw = random.Random(0)
    results = {transports: [] for transports in STARTS_TRANSPORTS}
    for i in range(args.starts):  # the transports in turn, so that both see the same load
        for j, transports in enumerate(STARTS_TRANSPORTS):
            domain = STARTS_DOMAINS[0] + (i * len(STARTS_TRANSPORTS) + j) % STARTS_DOMAINS[1]
            seconds = one_start(transports, args, domain, i % 2 == 0, draw.uniform(0.0, 2.0))
            results[transports].append(seconds)
            print(f'start {i + 1}/{args.starts}, {transports}: '
                  + ('nothing received' if seconds is None else f'first image in {seconds:.1f} s'),
                  file=sys.stderr, flush=True)
    for transports, seconds in results.items():
        came = [s for s in seconds if s is not None]
        median = f'{float(np.median(came)):.1f}' if came else '-'
        print(f'| {transports} | {len(seconds)} | {len(seconds) - len(came)} | {median} |')
    return 0


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
        # The sending takes count / rate seconds; a minute more for the start and the end
        # (a fixed 120 s ended longer runs in a TimeoutExpired traceback).
        limit = args.count / args.rate + 60
        pub.wait(timeout=limit)
        out, _ = sub.communicate(timeout=limit)
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
    parser.add_argument('--starts', type=number(int, low=0), default=0,
                        help='instead of the loss table: how many of N starts per transport '
                             'never connect (default 0: the loss table)')
    parser.add_argument('--role', choices=('pub', 'sub', 'stream', 'first'),
                        help=argparse.SUPPRESS)
    parser.add_argument('--reliability', default='best_effort', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        roles = {'pub': publish, 'sub': subscribe, 'stream': stream, 'first': first_image}
        try:
            return roles[args.role](args)
        except KeyboardInterrupt:  # stopped by the measuring command, which says so itself
            return INTERRUPTED
    if args.starts:
        return count_starts(args)
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
