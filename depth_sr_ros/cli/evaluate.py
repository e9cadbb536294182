"""
depth_sr_eval: accuracy of a model and the baselines with the papers' protocol.

    depth_sr_eval --model models/ahmf_x4.pt --data ../shared/data/middlebury_full

For every pair in --data (or --names): crop to a multiple of the scale, degrade the ground
truth with bicubic downscaling (--protocol middlebury), antialiased bicubic (--protocol
antialiased, the DKN/DCTNet convention) or nearest-neighbour (--protocol nyu),
optionally add Gaussian noise of sigma 5 (--noise) or a depth camera's noise, flying pixels and
holes (--sensor; the holes' blocks are left out for every method, as the node leaves them
empty), upsample with bicubic, the guided filter and the model, and report MAE and RMSE over
pixels with ground truth, in the dataset's units (0-255 for Middlebury), and the share of
output pixels near depth edges that float between the two surfaces (a point cloud's flying
points). Prints a markdown
table, writes the same as JSON with --json, and a figure of the first image like the papers'
(--figure; the table's outputs, so noisy with --noise or --sensor). --shifts adds each
method's RMSE with its output moved right and down by so many HR pixels: a method whose edges
sit where the truth's do is best at 0.
"""

import argparse
import json
import sys

import cv2
from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.console import interruptible, numbers
from depth_sr_ros.data.middlebury import list_pairs, load_pair
from depth_sr_ros.evaluation import (
    add_protocol_options, compared_methods, evaluate, markdown, shift_table)
from depth_sr_ros.files import (
    missing_folder, missing_input, unwritable, write_text_atomically)
from depth_sr_ros.inference import Acceleration, device_option, PRECISION_CHOICES, Predictor
from depth_sr_ros.metrics import mae
from depth_sr_ros.viz import colorize, image_format_problem, tile, write_image
import numpy as np


def figure(kept, path, error_range=4.0):
    """
    Write the papers' kind of figure for the pair that ``evaluate(..., keep=kept)`` kept.

    Top row: the guidance and each method's result; bottom row: the ground truth and each
    method's absolute error, saturating at ``error_range`` dataset units.
    """
    truth, rgb = kept['truth'], kept['rgb']
    lo, hi = float(truth[truth > 0].min()), float(truth.max())
    top = [tile(np.ascontiguousarray(rgb[:, :, ::-1]), f"{kept['name']}: guidance")]
    bottom = [tile(colorize(truth, lo, hi), 'ground truth')]
    for method, result in kept['results'].items():
        top.append(tile(colorize(result, lo, hi), method))
        bottom.append(tile(colorize(np.abs(result - truth), 0, error_range, cv2.COLORMAP_HOT),
                           f'|{method} - truth|, MAE {mae(result, truth):.3f}'))
    return write_image(path, np.vstack([np.hstack(top), np.hstack(bottom)]))


@interruptible('depth_sr_eval')
def main(argv=None):
    """Entry point of depth_sr_eval."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='model file')
    parser.add_argument('--data', required=True, help='folder with depth/ and rgb/')
    parser.add_argument('--names', default='', help='comma-separated pairs (default: all)')
    add_protocol_options(parser)
    parser.add_argument('--device', default='auto', type=device_option,
                        help="'auto' (cuda when available), 'cuda', 'cuda:N' or 'cpu' "
                             '(default auto)')
    parser.add_argument('--precision', default='float32',
                        choices=PRECISION_CHOICES,
                        help="the network's arithmetic (default float32: the papers' tables "
                             "measure the weights; 'auto' is what the node runs)")
    parser.add_argument('--shifts', default='', type=numbers(float),
                        help="comma-separated HR pixel shifts, written with '=' when the first "
                             'is negative (--shifts=-0.5,-0.25,0,0.25,0.5): also the average '
                             "RMSE with each method's output moved right and down by each")
    parser.add_argument('--json', default='', help='also write the results here')
    parser.add_argument('--figure', default='eval_figure.png',
                        help="figure of the first image ('' for none)")
    args = parser.parse_args(argv)
    problem = (unwritable(args, ('json', 'figure'), inputs=('model', 'data'))
               or image_format_problem(args.figure, '--figure')
               or missing_input('--model', args.model) or missing_folder('--data', args.data))
    if problem:
        print(f'depth_sr_eval: {problem}', file=sys.stderr)
        return 2
    shifts = args.shifts
    try:
        predictor = Predictor.from_checkpoint(
            args.model, device=args.device, acceleration=Acceleration(args.precision),
            warn=lambda message: print(f'depth_sr_eval: {message}', file=sys.stderr))
        names = args.names.split(',') if args.names else list_pairs(args.data)
        pairs = [load_pair(args.data, name) for name in names]
        s = predictor.scale
        methods = compared_methods(predictor)
        kept = {}
        report = evaluate(methods, pairs, s, args.protocol, args.noise, keep=kept,
                          shifts=shifts)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f'depth_sr_eval: {error}', file=sys.stderr)
        return 1
    report.update(model=args.model, scale=s, protocol=args.protocol, noise=args.noise,
                  data=args.data, shifts=shifts)
    units = 'mm' if args.noise == 'metric' else 'dataset units'
    print(f'MAE ({args.protocol} protocol, {s}x{", " + args.noise if args.noise else ""}, '
          f'{units})\n')
    print(markdown(report, methods, 'mae'))
    print('\nRMSE\n')
    print(markdown(report, methods, 'rmse'))
    print('\nFloating edge pixels: the share of output pixels near depth edges that lie between '
          'the two surfaces by more than a tenth of the jump (metrics.between_surfaces)\n')
    print(markdown(report, methods, 'between'))
    if report['unscored']:
        print(f"\n{report['unscored']} of the {report['truth_pixels']} pixels with ground truth "
              "are left out of every method's errors: some method gave no output there (as "
              'under the holes of the input, which stay holes).')
    if args.noise == 'rig_aligned':
        moved = [r['name'] for r in report['images'] if r['moved']]
        print(f'\nThe alignment moved the depth of {len(moved)} of {len(pairs)} rigs (one still '
              f'frame each){": " + ", ".join(moved) if moved else ""}.')
    if shifts:
        print('\nAverage RMSE with the output moved right and down by so many HR pixels '
              '(border left out)\n')
        print(shift_table(report, methods, shifts))
    if args.json:
        write_text_atomically(args.json, json.dumps(report, indent=1))
    if args.figure and figure(kept, args.figure):
        print(f'\nwrote {args.figure}: guidance and each method over ground truth and the '
              'absolute errors')
    return 0


if __name__ == '__main__':
    sys.exit(main())
