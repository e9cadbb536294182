"""
depth_sr_select: judge a model file on the validation images, and ship it only if it passes.

    depth_sr_select --model runs/pag_net_x2/model.pt --shipped models/pag_net_x2.pt \
        --data ../shared/data/middlebury30 [--install]

Evaluates the candidate (and the shipped file, when there is one) like depth_sr_eval (float32)
on the validation pairs of --data (selection.VALIDATION_NAMES, never the six test images)
under each protocol of selection.VALIDATION_PROTOCOLS, prints the table and the verdict of
selection.verdict, and exits 0 when the candidate may ship, 1 when not. --install then copies
it over --shipped (written beside it first, then moved into place: files.copy_atomically).
"""

import argparse
import json
import os
import sys

from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.console import interruptible
from depth_sr_ros.data.middlebury import load_pair
from depth_sr_ros.evaluation import table
from depth_sr_ros.files import copy_atomically, unwritable, write_text_atomically
from depth_sr_ros.inference import Acceleration, Predictor
from depth_sr_ros.selection import (
    judging_problem, VALIDATION_NAMES, validation_report, verdict)


def report_of(path, pairs):
    """Return (scale, validation report) of a model file, in float32."""
    predictor = Predictor.from_checkpoint(path, device='cpu',
                                          acceleration=Acceleration('float32'))
    # A file that learnt from a validation pair (depth_sr_train --val-names of others) would
    # be judged on what it knows by heart.
    problem = judging_problem([p['name'] for p in pairs], [(path, predictor.info['training'])])
    if problem:
        raise ValueError(problem)
    return predictor.scale, validation_report(predictor, pairs)


def comparison(candidate, shipped):
    """Return a markdown table: per protocol, MAE / RMSE of bicubic, shipped and candidate."""
    header = ['protocol', 'bicubic', 'shipped', 'candidate']
    rows = []
    for label, errors in candidate.items():
        cells = [errors['bicubic']] + ([shipped[label]['model']] if shipped else []) + [
            errors['model']]
        rows.append([label] + [f"{e['mae']:.4f} / {e['rmse']:.4f}" for e in cells])
    if not shipped:
        header.remove('shipped')
    return table(header, rows)


@interruptible('depth_sr_select')
def main(argv=None):
    """Entry point of depth_sr_select."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='the candidate model file')
    parser.add_argument('--shipped', default='',
                        help='the shipped file it would replace (default: none, a new file)')
    parser.add_argument('--data', required=True,
                        help='middlebury30: a folder with depth/ and rgb/ holding the '
                             f'validation pairs {", ".join(VALIDATION_NAMES)}')
    parser.add_argument('--install', action='store_true',
                        help='copy the candidate over --shipped when it passes')
    parser.add_argument('--json', default='', help='also write both reports here')
    args = parser.parse_args(argv)
    if args.install and not args.shipped:
        parser.error('--install needs --shipped, the file to write')
    # --install writes --shipped: its folder is checked now, not after the evaluation
    if args.install:
        problem = unwritable(args, ('json', 'shipped'), inputs=('model', 'data'))
    else:
        problem = unwritable(args, ('json',), inputs=('model', 'data', 'shipped'))
    if problem:
        print(f'depth_sr_select: {problem}', file=sys.stderr)
        return 2
    try:
        pairs = [load_pair(args.data, name) for name in VALIDATION_NAMES]
        scale, candidate = report_of(args.model, pairs)
        shipped = None
        if args.shipped and os.path.exists(args.shipped):
            shipped_scale, shipped = report_of(args.shipped, pairs)
            if shipped_scale != scale:
                parser.error(f'the candidate is {scale}x, the shipped file {shipped_scale}x')
    except (CheckpointError, OSError, ValueError) as error:
        print(f'depth_sr_select: {error}', file=sys.stderr)
        return 2
    ships, reasons = verdict(candidate, shipped)
    print(f'Validation pairs {", ".join(VALIDATION_NAMES)} of {args.data}, {scale}x, float32; '
          'MAE / RMSE in dataset units (metric depth: mm):\n')
    print(comparison(candidate, shipped))
    print(f'\n{"ships" if ships else "does not ship"}: ' + ' '.join(reasons))
    if args.json:
        write_text_atomically(args.json, json.dumps(
            {'candidate': candidate, 'shipped': shipped, 'ships': ships, 'reasons': reasons},
            indent=1))
    if ships and args.install:
        copy_atomically(args.model, args.shipped)
        print(f'installed {args.model} as {args.shipped}')
    return 0 if ships else 1


if __name__ == '__main__':
    sys.exit(main())
