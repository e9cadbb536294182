"""
depth_sr_soak: drive the node with the player for a while and watch memory and latency.

    depth_sr_soak --seconds 600 --rate 30 --json soak.json
    depth_sr_soak --rig d435 --seconds 600   # a raw rig: registration and alignment too

Runs depth_sr_player and depth_sr_node as two processes (see live_demo.py), samples the node's
resident memory every second from /proc, and reads its diagnostics. The seconds count from
the node's first output (its start-up is not growth). Reports the memory after --warmup
seconds and at the end (and the lowest samples around both, which is what a leak
raises), the node's latency per diagnostics period, the outputs and
the dropped pairs. Exits 1 when memory grew by more than --max-growth-mib after the warm-up or
when the node published nothing in the last --stall-seconds.
"""

import argparse
import json
import sys

from depth_sr_ros.console import INTERRUPTED, interruptible, number, process_memory_mib
from depth_sr_ros.files import unwritable, write_text_atomically
from depth_sr_ros.ros import DOMAIN_ID, domain_id
from depth_sr_ros.ros.watch import (
    add_rig_and_model_options, diagnostic_number, model_for, watch_player_and_node)
import numpy as np
import rclpy


def resident_mib(pid):
    """Return the resident memory of process ``pid`` in MiB (Linux /proc), or None."""
    return process_memory_mib(pid, 'VmRSS')


def memory_floors(samples, warmup, seconds):
    """
    Return the lowest resident memory (MiB) just after the warm-up and at the end of the run.

    Each frame allocates working memory and frees it again (about 150 MiB for AHMF 4x at
    640x480 on a CPU), so single samples jump up and down with the frame in progress; a leak
    raises the floor under them. Each floor is the minimum over a window of a third of the
    run after the warm-up, at most 30 s. ``samples`` are (elapsed s, MiB).
    """
    window = max(1.0, min(30.0, (seconds - warmup) / 3))
    start = [rss for t, rss in samples if warmup <= t <= warmup + window]
    end = [rss for t, rss in samples if t >= seconds - window]
    last = samples[-1][1]
    return min(start or [last]), min(end or [last])


def verdict(report, max_growth_mib, stall_seconds):
    """Return the list of problems found in a soak report (empty: passed)."""
    problems = []
    growth = report['rss_floor_end_mib'] - report['rss_floor_start_mib']
    if growth > max_growth_mib:
        problems.append(f'resident memory grew by {growth:.0f} MiB after the warm-up '
                        f'(lowest sample at the start and at the end; limit '
                        f'{max_growth_mib:.0f})')
    last = report['last_output_s']
    if last is None or report['seconds'] - last > stall_seconds:
        problems.append(f'no output in the last {stall_seconds:.0f} s')
    return problems


@interruptible('depth_sr_soak')
def main(argv=None):
    """Entry point of depth_sr_soak."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--seconds', type=number(float, above=0), default=600.0,
                        help='how long to run, s (default 600)')
    parser.add_argument('--rate', type=number(float, above=0), default=30.0,
                        help='player frame rate, Hz')
    add_rig_and_model_options(parser, 'camera the player imitates (see depth_sr_player); a '
                                      "raw rig runs the node's registration on every frame, and "
                                      'its alignment')
    parser.add_argument('--device', default='auto',
                        help="'auto', 'cuda', 'cuda:N' or 'cpu' (default auto)")
    parser.add_argument('--warmup', type=number(float, above=0), default=10.0,
                        help="seconds from the node's first output to the reference memory "
                             'sample, shorter than --seconds (default 10)')
    parser.add_argument('--max-growth-mib', type=number(float, low=0), default=50.0,
                        help='largest growth of resident memory after the warm-up that passes, '
                             'MiB (default 50)')
    parser.add_argument('--stall-seconds', type=number(float, above=0), default=10.0,
                        help='longest time without an output that passes, s (default 10)')
    parser.add_argument('--domain-id', type=DOMAIN_ID, default=domain_id(30, 20),
                        help='ROS domain of the player and the node (default: ROS_DOMAIN_ID '
                             'when set, else one of 30-49)')
    parser.add_argument('--json', default='', help='also write the results here as JSON')
    args = parser.parse_args(argv)
    if args.warmup >= args.seconds:  # else the memory check would measure nothing
        parser.error(f'--warmup {args.warmup:g} s must be shorter than --seconds '
                     f'{args.seconds:g} s')
    problem = unwritable(args, ('json',), inputs=('model',))
    if problem:
        print(f'depth_sr_soak: {problem}', file=sys.stderr)
        return 2
    samples = []  # (elapsed s, RSS MiB)

    def on_tick(node_process, elapsed):
        # The seconds count from the node's first output (from_first_output): its start-up
        # (imports, model load, first frame) is not memory growth. At the first output they
        # start again at 0, and what was sampled before is dropped.
        if samples and elapsed < samples[-1][0]:
            samples.clear()
        if not samples or elapsed - samples[-1][0] >= 1.0:
            rss = resident_mib(node_process.pid)
            if rss is not None:
                samples.append((elapsed, rss))

    model = model_for(args)
    watcher, ok = watch_player_and_node(args.seconds, args.rate, model, args.device,
                                        args.domain_id, 'depth_sr_soak', on_tick, inputs=False,
                                        rig=args.rig, from_first_output=True)
    try:
        if not ok or not samples:
            return 1
        after_warmup = [rss for t, rss in samples if t >= args.warmup] or [samples[-1][1]]
        seconds = watcher.watched  # the run's length, shorter after a Ctrl-C
        floor_start, floor_end = memory_floors(samples, args.warmup, seconds)
        periods = [{'latency_p50_ms': diagnostic_number(d['latency p50 (ms)']),
                    'latency_p95_ms': diagnostic_number(d['latency p95 (ms)']),
                    'output_hz': float(d['output (Hz)']),
                    'dropped_pairs': int(d['dropped pairs'])} for d in watcher.diagnostics]
        report = {
            'seconds': seconds, 'rate_hz': args.rate,
            'rss_after_warmup_mib': after_warmup[0], 'rss_end_mib': samples[-1][1],
            'rss_max_mib': max(rss for _, rss in samples),
            'rss_floor_start_mib': floor_start, 'rss_floor_end_mib': floor_end,
            'outputs': len(watcher.outputs),
            'output_hz': len(watcher.outputs) / seconds,
            'dropped_pairs': periods[-1]['dropped_pairs'] if periods else None,
            'last_output_s': (watcher.outputs[-1][0] - watcher.started
                              if watcher.outputs else None),
            'latency_p50_ms_by_period': [p['latency_p50_ms'] for p in periods],
            'rss_mib_every_10_s': [round(rss, 1) for t, rss in samples[::10]],
        }
        latencies = [v for v in report['latency_p50_ms_by_period'] if np.isfinite(v)]
        problems = verdict(report, args.max_growth_mib, args.stall_seconds)
        print(f"{seconds:.0f} s at {args.rate:g} Hz: {report['outputs']} outputs "
              f"({report['output_hz']:.2f} Hz), dropped pairs {report['dropped_pairs']}")
        print(f"node resident memory: {report['rss_after_warmup_mib']:.0f} MiB after "
              f"{args.warmup:.0f} s, {report['rss_end_mib']:.0f} MiB at the end, "
              f"max {report['rss_max_mib']:.0f} MiB; lowest {floor_start:.0f} MiB just after "
              f'the warm-up and {floor_end:.0f} MiB at the end')
        if latencies:
            quarters = np.array_split(np.array(latencies), min(4, len(latencies)))
            print('latency p50 per quarter of the run (ms): '
                  + ', '.join(f'{q.mean():.0f}' for q in quarters))
        if args.json:
            write_text_atomically(args.json, json.dumps(dict(report, problems=problems),
                                                        indent=1))
        for problem in problems:
            print(f'depth_sr_soak: FAILED: {problem}', file=sys.stderr)
        if watcher.interrupted:
            return INTERRUPTED  # a soak cut short passes nothing
        return 1 if problems else 0
    finally:
        watcher.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
