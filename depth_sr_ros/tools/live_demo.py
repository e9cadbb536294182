"""
depth_sr_live_demo: run the bundled player and the node together, watch, summarise.

Starts depth_sr_player (``--rig``: the camera it imitates) and depth_sr_node as two processes
on a private ROS domain (with Fast DDS's LARGE_DATA transports on every participant), listens
to the camera topics, the node's output and /diagnostics for --seconds, then writes a picture
(colour, the depth as the sensor sent it, the node's output over the colour, and its error
against the player's depth in the colour frame) and prints a summary of rates, latencies and
that error. It is the embedded default for a user without a camera; it writes its picture as
soon as one output frame came out.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import cv2
from depth_sr_ros.data.scene import recommended_model
from depth_sr_ros.paths import MODEL_HELP
from depth_sr_ros.ros.conversions import color_to_array, depth_to_metres, stamp_ns
from depth_sr_ros.ros.entry import domain_id
from depth_sr_ros.tools.player import read_recording, rig_extrinsic, RIG_NAMES
from depth_sr_ros.viz import colorize, side_by_side, tile
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

ERROR_RANGE_M = 0.05


class Watcher(Node):
    """Keeps recent inputs by stamp, the node's outputs, and its diagnostics."""

    def __init__(self, inputs=True, **kwargs):
        """Subscribe to the output and /diagnostics, and with ``inputs`` the camera topics."""
        super().__init__('depth_sr_live_demo', **kwargs)
        self.depth, self.color, self.truth = {}, {}, {}
        self.still = False  # every frame of the player is the same view
        self.started = self.get_clock().now().nanoseconds * 1e-9
        self.outputs = []  # (receive time s, message)
        self.diagnostics = []
        for store, topic in ((self.depth, 'depth/image_raw'), (self.color, 'color/image_raw'),
                             (self.truth, 'truth/depth')):
            if inputs:  # a picture needs them; a measurement does not pay for them
                self.create_subscription(Image, topic, self._keep(store),
                                         qos_profile_sensor_data)
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


def _match(watcher):
    """
    Return (output, depth, colour, truth) messages of the newest output with its inputs.

    A scene rig's player shows one still view (see watch_player_and_node): when an output
    took longer than the watcher keeps its inputs, any of its frames is that output's input.
    """
    for _, out in reversed(watcher.outputs):
        stamp = stamp_ns(out.header.stamp)
        found = (watcher.depth.get(stamp), _closest(watcher.color, stamp),
                 _closest(watcher.truth, stamp))
        if None not in found[:2] and (found[2] is not None or not watcher.truth):
            return (out,) + found  # a recorded bag has no truth: None
    stores = (watcher.depth, watcher.color, watcher.truth)
    if watcher.still and watcher.outputs and all(stores):
        return (watcher.outputs[-1][1],) + tuple(store[max(store)] for store in stores)
    return None


def output_error_mm(out, truth):
    """Return the mean absolute error in mm of an output against the truth where both exist."""
    result, expected = depth_to_metres(out), depth_to_metres(truth)
    both = np.isfinite(result) & np.isfinite(expected)
    return float(np.mean(np.abs(result[both] - expected[both]))) * 1e3 if both.any() else None


def picture(watcher, path):
    """Write colour | depth as sent | output over colour | |output - truth|; False if none."""
    matched = _match(watcher)
    if matched is None:
        return False
    out, depth_msg, color_msg, truth_msg = matched
    sensed = depth_to_metres(depth_msg)
    color, order = color_to_array(color_msg)
    result = depth_to_metres(out)
    truth = depth_to_metres(truth_msg) if truth_msg is not None else None
    low, high = np.nanpercentile(result if truth is None else truth, [1, 99])
    bgr = np.ascontiguousarray(color if order == 'bgr' else color[:, :, ::-1])
    shown = colorize(result, low, high)
    if shown.shape[:2] != bgr.shape[:2]:
        bgr = cv2.resize(bgr, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA)
    overlay = np.where(np.isfinite(result)[:, :, None],
                       cv2.addWeighted(bgr, 0.4, shown, 0.6, 0), bgr)
    tiles = [tile(bgr, f'colour {color_msg.width}x{color_msg.height}'),
             tile(colorize(sensed, low, high),
                  f'depth as sent {depth_msg.width}x{depth_msg.height} '
                  f"({depth_msg.header.frame_id or 'no frame'})"),
             tile(overlay, f'output {out.width}x{out.height} over colour')]
    if truth is not None:
        error = np.abs(result - cv2.resize(truth, (result.shape[1], result.shape[0]),
                                           interpolation=cv2.INTER_NEAREST))
        tiles.append(tile(colorize(error, 0, ERROR_RANGE_M, cv2.COLORMAP_HOT),
                          f'|output - truth|, mean {np.nanmean(error) * 1e3:.1f} mm'))
    return cv2.imwrite(path, side_by_side(tiles))


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
    matched = _match(watcher)
    if matched is not None and matched[3] is not None:
        error = output_error_mm(matched[0], matched[3])
        if error is not None:
            lines.append(f'newest output against the depth in the colour frame: mean error '
                         f'{error:.1f} mm')
    if watcher.diagnostics:
        last = watcher.diagnostics[-1]
        lines.append('node diagnostics (last period): ' + ', '.join(
            f'{k} {v}' for k, v in last.items()))
    return lines


def watch_player_and_node(seconds, rate, model, device, domain_id, program, on_tick=None,
                          rig='registered', inputs=True, bag=''):
    """
    Run depth_sr_player and depth_sr_node as two processes and watch them for ``seconds``.

    Both use ROS domain ``domain_id`` and Fast DDS's LARGE_DATA transports, as does the
    Watcher in this process. ``on_tick(node_process, elapsed_s)`` is called about ten times a
    second. ``rig`` is the player's camera (its extrinsic goes to the node's depth_to_color);
    ``inputs``: the watcher also keeps the camera images (for a picture).
    Returns (watcher, ok); ok is False when a process stopped early. Ctrl-C ends the watch
    early, like its time running out. The caller destroys the watcher and shuts rclpy down.
    """
    extrinsic = read_recording(bag)[2] if bag else rig_extrinsic(rig)
    # A scene rig renders each view in about a second at start-up, and a CPU takes seconds
    # per 1280x720 output: the player shows one still view, so every frame matches.
    still = rig != 'registered' and not bag
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA')
    os.environ.update(env)  # the watcher in this process joins the same domain and transports
    commands = [
        [sys.executable, '-m', 'depth_sr_ros.tools.player', '--ros-args', '-p', f'rate:={rate}',
         '-p', f'rig:={rig}'] + (['-p', 'frames:=1'] if still else [])
        + (['-p', f'bag:={bag}'] if bag else []),
        [sys.executable, '-m', 'depth_sr_ros.ros.node', '--ros-args', '-p', f'device:={device}',
         '-p', 'diagnostics_period:=2.0']
        + (['-p', f'model_path:={model}'] if model else [])
        + (['-p', f'depth_to_color:={extrinsic}'] if extrinsic else []),
    ]
    processes = [subprocess.Popen(c, env=env) for c in commands]
    rclpy.init()
    watcher = Watcher(inputs)
    watcher.still = still
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
    except KeyboardInterrupt:  # Ctrl-C: stop watching, and say what was seen so far
        print(f'{program}: stopped by Ctrl-C after {time.monotonic() - started:.0f} s; what '
              'was seen until then follows', file=sys.stderr)
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
    parser.add_argument('--rig', default='registered', choices=RIG_NAMES,
                        help='camera the player imitates (see depth_sr_player)')
    parser.add_argument('--bag', default='',
                        help='play this recorded rosbag2 bag instead of a rig (no truth tile)')
    parser.add_argument('--rate', type=float, default=30.0, help='player frame rate, Hz')
    parser.add_argument('--model', default='',
                        help=MODEL_HELP + "; a rig's own where it needs another (tof: 8x)")
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--output', default='live_demo.png', help='picture to write')
    parser.add_argument('--domain-id', type=int, default=domain_id(50, 50),
                        help='ROS domain of the three processes (default: ROS_DOMAIN_ID when '
                             'set, else one of 50-99)')
    args = parser.parse_args(argv)
    model = args.model or ('' if args.bag else recommended_model(args.rig))
    watcher, ok = watch_player_and_node(args.seconds, args.rate, model, args.device,
                                        args.domain_id, 'depth_sr_live_demo', rig=args.rig,
                                        bag=args.bag)
    try:
        print('\n'.join(summary(watcher, args.seconds)))
        wrote = picture(watcher, args.output)
        if wrote:
            truth = '' if args.bag else (f', |output - truth| (saturates at '
                                         f'{ERROR_RANGE_M * 100:.0f} cm)')
            print(f'wrote {args.output}: colour, depth as sent, node output over the colour'
                  f'{truth}; black = no estimate')
        if not ok:
            return 1
        if not wrote:
            print('depth_sr_live_demo: no output frame could be matched to its input; '
                  'no picture', file=sys.stderr)
            return 1
        return 0
    finally:
        watcher.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
