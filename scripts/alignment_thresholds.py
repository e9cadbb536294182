"""
How the aligner's thresholds trade: offset rigs moved back against calibrated rigs moved.

For each training pair of middlebury30 (neither the six test images nor the validation pairs)
and each of --rigs simulated rigs (data.rig), drawn once with the offset a real rig has
(``draw_rig(offset=True)``: its depth 1 to 2.5 depth pixels off the colour image) and once
without (only the small calibration error; the same geometry, the sensor's faults drawn after
it differ): the aligner's first look at one still frame, as ``alignment.Aligner.observe`` makes
it (the peak of the edge correlation, its sigma, ratio and gain, on the node's matching grid,
and its length in output pixels), and the registration's error with no correction and with the
peak's (the mean absolute log-depth difference, on the LR grid, from the depth registered with
the rig's true extrinsics). For each threshold set it prints how many rigs the set moves, on
how many of them the move lowers the error, and the mean error left.

    python scripts/alignment_thresholds.py --data ../shared/data/middlebury30 --scale 4
"""

import argparse
import math
import sys

from depth_sr_ros import alignment
from depth_sr_ros.console import interruptible, number
from depth_sr_ros.data import rig as rigs
from depth_sr_ros.data.datasets import MIDDLEBURY_TEST
from depth_sr_ros.data.degradations import crop_to_multiple
from depth_sr_ros.data.middlebury import list_pairs, load_pair
from depth_sr_ros.selection import VALIDATION_NAMES
import numpy as np

# (label, MIN_PEAK_SIGMA, MIN_PEAK_RATIO, MIN_PEAK_GAIN, MIN_CORRECTION_OUTPUT, MIN_PEAK_VALUE)
SHIPPED = (alignment.MIN_PEAK_SIGMA, alignment.MIN_PEAK_RATIO, alignment.MIN_PEAK_GAIN)
FLOOR = alignment.MIN_CORRECTION_OUTPUT
STRONG = alignment.MIN_PEAK_VALUE
SETS = (
    ('shipped', *SHIPPED, FLOOR, STRONG),
    ('shipped, no output-pixel floor', *SHIPPED, 0.0, STRONG),
    ('shipped, no correlation floor', *SHIPPED, FLOOR, -math.inf),
    ('3.5, 1.3, no gain test', 3.5, 1.3, -math.inf, FLOOR, -math.inf),
    ('3.0, 1.2, no gain test', 3.0, 1.2, -math.inf, FLOOR, -math.inf),
    ('2.8, 1.2, 1.0', 2.8, 1.2, 1.0, FLOOR, -math.inf),
    ('3.0, 1.2, 1.2', 3.0, 1.2, 1.2, FLOOR, -math.inf),
)


def log_errors(truth, *depths):
    """Return each depth's mean absolute log-depth difference from ``truth``, on common pixels."""
    both = np.isfinite(truth) & (truth > 0)
    for depth in depths:
        both &= np.isfinite(depth) & (depth > 0)
    return [float(np.abs(np.log(d[both]) - np.log(truth[both])).mean()) for d in depths]


def first_look(values, color, scale, rng, offset):
    """Return the aligner's first look at one simulated rig, and the errors it decides."""
    rig, depth = rigs.rig_capture(values, scale, rng, offset=offset)
    register = rigs.rig_registration(rig, depth)
    finer = alignment.finer_grid(scale)
    correlation = alignment.frame_correlation(
        register((0.0, 0.0), finer), color, alignment.lr_max_shift(alignment.MAX_SHIFT, scale),
        finer)
    if correlation is None:
        return None
    dx, dy, sigma, ratio, gain, value = alignment.peak(correlation)
    truth = rigs.rig_registration(rig, depth, rig.depth_to_color)((0.0, 0.0))
    error, moved_error = log_errors(truth, register((0.0, 0.0)),
                                    register((dx / finer, dy / finer)))
    return {'sigma': sigma, 'ratio': ratio, 'gain': gain, 'value': value,
            'far_enough': math.hypot(dx, dy) >= alignment.MIN_CORRECTION,
            'output_px': math.hypot(dx, dy) / finer * scale,
            'error': error, 'moved_error': moved_error}


@interruptible('alignment_thresholds.py')
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', required=True, help='the middlebury30 folder')
    parser.add_argument('--scale', type=number(int, low=2), default=4,
                        help='upsampling factor (default: 4)')
    parser.add_argument('--rigs', type=number(int, low=1), default=10,
                        help='rigs drawn per pair and kind (default: 10)')
    args = parser.parse_args(argv)
    try:
        names = [n for n in list_pairs(args.data)
                 if n not in MIDDLEBURY_TEST and n not in VALIDATION_NAMES]
        pairs = [load_pair(args.data, name) for name in names]
    except (OSError, ValueError) as error:
        print(f'alignment_thresholds.py: {error}', file=sys.stderr)
        return 2
    looks = {False: [], True: []}
    for name, pair in zip(names, pairs):
        truth = crop_to_multiple(pair['depth'], args.scale)
        color = crop_to_multiple(pair['rgb'], args.scale)
        values = rigs.truth_values(truth)[0]
        for draw in range(args.rigs):
            for offset in (False, True):  # the same geometry with and without the offset
                rng = np.random.default_rng((int(name), draw, args.scale))
                look = first_look(values, color, args.scale, rng, offset)
                if look is not None:
                    looks[offset].append(look)
    print(f'{len(names)} training pairs, {args.rigs} rigs each, {args.scale}x, one still frame; '
          'error: mean |log depth| against the true extrinsics, x1000\n')
    print('| thresholds (sigma, ratio, gain; output-pixel floor; correlation floor) | offset '
          'rigs moved (error lower) | offset rigs error | calibrated rigs moved (error lower) | '
          'calibrated rigs error |')
    print('|---|---|---|---|---|')
    for label, sigma, ratio, gain, floor, strong in SETS:
        cells = []
        for offset in (True, False):
            moved = [lk['far_enough'] and lk['output_px'] >= floor and lk['sigma'] >= sigma
                     and lk['ratio'] >= ratio and lk['gain'] >= gain and lk['value'] >= strong
                     for lk in looks[offset]]
            better = sum(m and lk['moved_error'] < lk['error']
                         for m, lk in zip(moved, looks[offset]))
            left = np.mean([lk['moved_error'] if m else lk['error']
                            for m, lk in zip(moved, looks[offset])])
            cells += [f'{sum(moved)} of {len(moved)} ({better})', f'{1000 * left:.2f}']
        print(f'| {label} | ' + ' | '.join(cells) + ' |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
