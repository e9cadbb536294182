"""
depth_sr_live_demo: run the bundled player and the node together, watch, summarise.

Starts depth_sr_player and depth_sr_node as two processes on a private ROS domain (with Fast
DDS's LARGE_DATA transports on every participant), listens to the camera topics, the node's
output and /diagnostics for --seconds, then writes a picture (colour, input depth, the node's
output, and the output's difference to bicubic upsampling of the input) and prints a summary
of rates and latencies. It is the embedded default for a user without a camera.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import cv2
from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.conversions import color_to_array, depth_to_metres, stamp_ns
from depth_sr_ros.demo import colorize, tile
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

DIFF_RANGE_M = 0.05


class Watcher(Node):
    """Keeps recent inputs by stamp, the node's outputs, and its diagnostics."""

    def __init__(self, **kwargs):
        """Subscribe to the camera topics, the output and /diagnostics."""
        super().__init__('depth_sr_live_demo', **kwargs)
        self.depth, self.color = {}, {}
        self.started = self.get_clock().now().nanoseconds * 1e-9
        self.outputs = []  # (receive time s, message)
        self.diagnostics = []
        for store, topic in ((self.depth, 'depth/image_raw'), (self.color, 'color/image_raw')):
            self.create_subscription(Image, topic, self._keep(store), qos_profile_sensor_data)
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, 'depth_sr/image', self._on_output, reliable)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _keep(self, store):
        def callback(msg):
            store[stamp_ns(msg.header.stamp)] = msg
            while len(store) > 300:
                del store[min(store)]
        return callback

    def _on_output(self, msg):
        self.outputs.append((self.get_clock().now().nanoseconds * 1e-9, msg))

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith('depth_sr'):
                self.diagnostics.append({kv.key: kv.value for kv in status.values})


def _closest(store, stamp_ns, slop_ns=50_000_000):
    if not store:
        return None
    best = min(store, key=lambda s: abs(s - stamp_ns))
    return store[best] if abs(best - stamp_ns) <= slop_ns else None


def picture(watcher, path):
    """Write colour | input | output | |output - bicubic| for the newest complete output."""
    for _, out in reversed(watcher.outputs):
        depth_msg = watcher.depth.get(stamp_ns(out.header.stamp))
        color_msg = _closest(watcher.color, stamp_ns(out.header.stamp))
        if depth_msg is not None and color_msg is not None:
            break
    else:
        return False
    depth_lr = depth_to_metres(depth_msg)
    color, order = color_to_array(color_msg)
    result = depth_to_metres(out)
    scale = out.height // depth_msg.height
    bicubic = BicubicUpsampler(scale)(depth_lr, color, order)
    low, high = np.nanpercentile(result, 1), np.nanpercentile(result, 99)
    bgr = color if order == 'bgr' else color[:, :, ::-1]
    tiles = [tile(np.ascontiguousarray(bgr), 'colour'),
             tile(colorize(depth_lr, low, high), f'input {depth_msg.width}x{depth_msg.height}'),
             tile(colorize(result, low, high), f'node output {out.width}x{out.height}'),
             tile(colorize(np.abs(result - bicubic), 0, DIFF_RANGE_M, cv2.COLORMAP_HOT),
                  '|output - bicubic|')]
    return cv2.imwrite(path, np.hstack(tiles))


def summary(watcher, seconds):
    """Return the lines of the summary."""
    lines = [f'{len(watcher.outputs)} super-resolved frames received in {seconds:.0f} s']
    if watcher.outputs:
        first, last = watcher.outputs[0][0], watcher.outputs[-1][0]
        if len(watcher.outputs) > 1:
            lines.append(f'output rate {(len(watcher.outputs) - 1) / (last - first):.2f} Hz')
        latency = [t - stamp_ns(m.header.stamp) * 1e-9 for t, m in watcher.outputs]
        lines.append(f'stamp-to-receive latency p50 {np.percentile(latency, 50) * 1e3:.0f} ms'
                     f', p95 {np.percentile(latency, 95) * 1e3:.0f} ms')
    if watcher.diagnostics:
        last = watcher.diagnostics[-1]
        lines.append('node diagnostics (last period): ' + ', '.join(
            f'{k} {v}' for k, v in last.items()))
    return lines


def watch_player_and_node(seconds, rate, model, device, domain_id, program, on_tick=None):
    """
    Run depth_sr_player and depth_sr_node as two processes and watch them for ``seconds``.

    Both use ROS domain ``domain_id`` and Fast DDS's LARGE_DATA transports, as does the
    Watcher in this process. ``on_tick(node_process, elapsed_s)`` is called about ten times a
    second. Returns (watcher, ok); ok is False when a process stopped early. The caller
    destroys the watcher and shuts rclpy down.
    """
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA')
    os.environ.update(env)  # the watcher in this process joins the same domain and transports
    commands = [
        [sys.executable, '-m', 'depth_sr_ros.player', '--ros-args', '-p', f'rate:={rate}'],
        [sys.executable, '-m', 'depth_sr_ros.node', '--ros-args', '-p', f'device:={device}',
         '-p', 'diagnostics_period:=2.0']
        + (['-p', f'model_path:={model}'] if model else []),
    ]
    processes = [subprocess.Popen(c, env=env) for c in commands]
    rclpy.init()
    watcher = Watcher()
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            rclpy.spin_once(watcher, timeout_sec=0.1)
            if on_tick is not None:
                on_tick(processes[1], time.monotonic() - started)
            if any(p.poll() is not None for p in processes):
                print(f'{program}: a process stopped early (see its output above)',
                      file=sys.stderr)
                return watcher, False
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    return watcher, True


def main(argv=None):
    """Entry point of depth_sr_live_demo."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='how long to watch')
    parser.add_argument('--rate', type=float, default=30.0, help='player frame rate, Hz')
    parser.add_argument('--model', default='', help='model file (default: installed AHMF 4x)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--output', default='live_demo.png', help='picture to write')
    parser.add_argument('--domain-id', type=int, default=50 + os.getpid() % 50,
                        help='ROS_DOMAIN_ID for the three processes')
    args = parser.parse_args(argv)
    watcher, ok = watch_player_and_node(args.seconds, args.rate, args.model, args.device,
                                        args.domain_id, 'depth_sr_live_demo')
    try:
        if not ok:
            return 1
        print('\n'.join(summary(watcher, args.seconds)))
        if not picture(watcher, args.output):
            print('depth_sr_live_demo: no output frame could be matched to its input; '
                  'no picture', file=sys.stderr)
            return 1
        print(f'wrote {args.output}: colour, input depth, node output, |output - bicubic| '
              f'(saturates at {DIFF_RANGE_M * 100:.0f} cm; black = no estimate)')
        return 0
    finally:
        watcher.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
