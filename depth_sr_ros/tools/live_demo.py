"""
depth_sr_live_demo: run the bundled player and the node together, watch, summarise.

Starts depth_sr_player (``--rig``: the camera it imitates) and depth_sr_node as two processes
on a private ROS domain (with Fast DDS's shared-memory transport on every participant:
``ros.ONE_COMPUTER_TRANSPORTS``), listens
to the camera topics, the node's output and /diagnostics for --seconds, then writes a picture
(colour, the depth as the sensor sent it, the node's output over the colour, and its error
against the player's depth in the colour frame) and prints a summary of rates, latencies and
that error. It is the embedded default for a user without a camera; it writes its picture as
soon as one output frame came out.
"""

import argparse
import sys

import cv2
from depth_sr_ros.bags import BagError
from depth_sr_ros.console import INTERRUPTED, interruptible, number
from depth_sr_ros.files import unwritable
from depth_sr_ros.ros import DOMAIN_ID, domain_id
from depth_sr_ros.ros.conversions import color_to_array, depth_to_metres, stamp_ns
from depth_sr_ros.ros.watch import add_rig_and_model_options, model_for, watch_player_and_node
from depth_sr_ros.viz import (
    colorbar, colorize, edge_window, image_format_problem, side_by_side, stack_rows, tile,
    write_image)
import numpy as np
import rclpy

ERROR_RANGE_M = 0.05


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
    """
    Write the picture of the newest matched output; False if there is none.

    Top row: colour | depth as sent | output over colour | |output - truth| | the depth colour
    bar in metres. Bottom row: crops at full output resolution around the strongest depth edge.
    """
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
    error = None
    if truth is not None:
        error = np.abs(result - cv2.resize(truth, (result.shape[1], result.shape[0]),
                                           interpolation=cv2.INTER_NEAREST))
        tiles.append(tile(colorize(error, 0, ERROR_RANGE_M, cv2.COLORMAP_HOT),
                          f'|output - truth|, mean {np.nanmean(error) * 1e3:.1f} mm'))
    top = side_by_side(tiles)
    tiles.append(colorbar(low, high, top.shape[0]))
    top = side_by_side(tiles)
    # The same at full resolution around the strongest depth edge: the tiles above shrink a
    # 1280x720 output to 320 pixels, too small to see what super-resolution did.
    size = (min(180, result.shape[0]), min(320, result.shape[1]))
    y, x = edge_window(result, size)
    window = (slice(y, y + size[0]), slice(x, x + size[1]))
    crops = [tile(bgr[window], f'colour, full resolution at ({x}, {y})'),
             tile(colorize(result[window], low, high), 'output, full resolution'),
             tile(overlay[window], 'output over colour, full resolution')]
    if error is not None:
        crops.append(tile(colorize(error[window], 0, ERROR_RANGE_M, cv2.COLORMAP_HOT),
                          '|output - truth|, full resolution'))
    return write_image(path, stack_rows([top, side_by_side(crops)]))


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


@interruptible('depth_sr_live_demo')
def main(argv=None):
    """Entry point of depth_sr_live_demo."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--seconds', type=number(float, above=0), default=20.0,
                        help='how long to watch')
    add_rig_and_model_options(parser, 'camera the player imitates (see depth_sr_player)')
    parser.add_argument('--bag', default='',
                        help='play this recorded rosbag2 bag instead of a rig (no truth tile)')
    parser.add_argument('--rate', type=number(float, above=0), default=None,
                        help="player frame rate of a rig, Hz (default: the player's, 30; a "
                             'bag plays at its recorded pace)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--output', default='live_demo.png', help='picture to write')
    parser.add_argument('--domain-id', type=DOMAIN_ID, default=domain_id(50, 50),
                        help='ROS domain of the three processes (default: ROS_DOMAIN_ID when '
                             'set, else one of 50-99)')
    args = parser.parse_args(argv)
    if args.bag and args.rate is not None:
        parser.error('--rate is for a rig: a bag plays at its recorded pace')
    problem = unwritable(args, ('output',)) or image_format_problem(args.output)
    if problem:
        print(f'depth_sr_live_demo: {problem}', file=sys.stderr)
        return 2
    model = model_for(args)
    try:
        watcher, ok = watch_player_and_node(
            args.seconds, args.rate, model, args.device, args.domain_id,
            'depth_sr_live_demo', rig=args.rig, bag=args.bag)
    except (BagError, ValueError) as error:  # a bag that cannot be read: before any process
        print(f'depth_sr_live_demo: {error}', file=sys.stderr)
        return 2
    try:
        print('\n'.join(summary(watcher, watcher.watched)))
        wrote = picture(watcher, args.output)
        if wrote:
            truth = '' if args.bag else (f', |output - truth| (saturates at '
                                         f'{ERROR_RANGE_M * 100:.0f} cm)')
            print(f'wrote {args.output}: colour, depth as sent, node output over the colour'
                  f'{truth}; black = no estimate')
        if not ok:
            return 1
        if watcher.interrupted:
            return INTERRUPTED
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
