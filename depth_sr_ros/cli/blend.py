"""
depth_sr_blend: average two model files' weights, the blend chosen on validation images.

    depth_sr_blend --model runs/x8_sensor/model.pt --toward models/ahmf_x8.pt \
        --weights 0,0.1,0.2,0.3,0.4,0.5 --data ../shared/data/middlebury30 --names 13,27 \
        --sensor --out models/ahmf_x8_sensor.pt

Writes (1 - w) * MODEL + w * TOWARD. Both must be the same network, typically a fine-tune and
the file it started from (checkpoint.blend_checkpoints): a noise-robust fine-tune blended back
towards the clean weights keeps most of its robustness and regains clean accuracy. With
several weights, each blend is evaluated like depth_sr_eval (float32) on --names of --data
under the chosen protocol and noise, and the one with the lowest --metric is written (ties:
the first listed). Choose on images that training held out for validation, never on the test
images the cards report.
"""

import argparse
import sys

from depth_sr_ros.checkpoint import (
    blend_checkpoints, CheckpointError, read_checkpoint, save_checkpoint)
from depth_sr_ros.console import interruptible, numbers
from depth_sr_ros.data.middlebury import load_pair
from depth_sr_ros.evaluation import add_protocol_options, evaluate_network
from depth_sr_ros.files import unwritable
from depth_sr_ros.selection import judging_problem


def choose_weight(blends, pairs, protocol, noise, metric):
    """
    Return (best weight, rows): rows are (weight, MAE, RMSE) averaged over ``pairs``.

    :param blends: weight -> (model, info) as blend_checkpoints returns them. Ties go to the
        first weight.
    """
    rows = []
    for weight, (model, _) in blends.items():
        error = evaluate_network(model, pairs, model.scale, protocol, noise)
        rows.append((weight, error['mae'], error['rmse']))
    column = {'mae': 1, 'rmse': 2}[metric]
    best = min(rows, key=lambda row: row[column])
    return best[0], rows


@interruptible('depth_sr_blend')
def main(argv=None):
    """Entry point of depth_sr_blend."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='model file (weight 0)')
    parser.add_argument('--toward', required=True,
                        help='model file of the same network (weight 1)')
    parser.add_argument('--weights', required=True, type=numbers(float, low=0, high=1),
                        help='comma-separated blend weights within [0, 1]; several need --data '
                             'and --names to choose among them')
    parser.add_argument('--out', required=True, help='model file to write')
    parser.add_argument('--data', default='', help='folder with depth/ and rgb/')
    parser.add_argument('--names', default='', help='comma-separated validation pairs')
    add_protocol_options(parser)  # what the blends are chosen on, as depth_sr_eval
    parser.add_argument('--metric', default='rmse', choices=('mae', 'rmse'),
                        help='what the blend is chosen by (default rmse)')
    parser.add_argument('--storage-dtype', default='float16', choices=('float16', 'float32'),
                        help="weights' storage in the written file (default float16)")
    args = parser.parse_args(argv)
    problem = unwritable(args, ('out',), inputs=('model', 'toward', 'data'))
    if problem:
        print(f'depth_sr_blend: {problem}', file=sys.stderr)
        return 2
    weights = args.weights
    if not weights:
        parser.error("argument --weights: comma-separated finite numbers within [0, 1], not ''")
    if len(weights) > 1 and not (args.data and args.names):
        parser.error('several --weights need --data and --names to choose among them')
    if len(weights) == 1 and (args.data or args.names):
        print('depth_sr_blend: one weight, nothing to choose: --data and --names are not used',
              file=sys.stderr)
    try:
        names = args.names.split(',')
        if len(weights) > 1:  # the test images are for reporting, the training pairs known
            problem = judging_problem(names, [(path, read_checkpoint(path)['training'])
                                              for path in (args.model, args.toward)])
            if problem:
                print(f'depth_sr_blend: --names {problem}', file=sys.stderr)
                return 2
        blends = {w: blend_checkpoints(args.model, args.toward, w) for w in weights}
        chosen = weights[0]
        if len(weights) > 1:
            pairs = [load_pair(args.data, name) for name in names]
            chosen, rows = choose_weight(blends, pairs, args.protocol, args.noise, args.metric)
            noise = f', noise {args.noise}' if args.noise else ''
            print(f'{args.names} of {args.data}, {args.protocol} protocol{noise}, float32:')
            print('| weight | MAE | RMSE |')
            print('|---|---|---|')
            for weight, mae, rmse in rows:
                print(f'| {weight:g} | {mae:.3f} | {rmse:.3f} |')
            _, mae, rmse = next(row for row in rows if row[0] == chosen)
            blends[chosen][1]['training']['blend']['chosen_on'] = {
                'data': args.data, 'names': args.names, 'protocol': args.protocol,
                'noise': args.noise, 'metric': args.metric, 'mae': mae, 'rmse': rmse}
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f'depth_sr_blend: {error}', file=sys.stderr)
        return 1
    model, info = blends[chosen]
    save_checkpoint(args.out, model, info['arch'], info['arch_kwargs'], info['preprocessing'],
                    info['training'], storage_dtype=args.storage_dtype)
    print(f'wrote {args.out}: {1 - chosen:g} x {args.model} + {chosen:g} x {args.toward}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
