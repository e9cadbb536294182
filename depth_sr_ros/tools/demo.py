"""
depth_sr_demo: super-resolve the bundled sample pair and write a comparison picture.

The sample (Middlebury "Art", held out of training) is turned into metric depth, degraded with
the papers' bicubic protocol, given a few missing regions like a real sensor, and upsampled by
bicubic, the guided filter and the network. The picture shows colour, input, ground truth,
each result and each result's error; the table printed gives the errors in millimetres.
"""

import argparse
import sys
import time

import cv2
from depth_sr_ros.baselines import BicubicUpsampler, GuidedFilterUpsampler
from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.console import interruptible
from depth_sr_ros.data.degradations import bicubic_downsample, crop_to_multiple, kinect_holes
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair, SAMPLE_DIR
from depth_sr_ros.files import missing_input, unwritable
from depth_sr_ros.inference import device_option, Predictor
from depth_sr_ros.metrics import mae, rmse
from depth_sr_ros.paths import MODEL_HELP, resolve_model_path
from depth_sr_ros.viz import colorize, image_format_problem, tile, write_image
import numpy as np

ERROR_RANGE_M = 0.2  # error maps saturate at 20 cm


def run(model_path, device, output, seed=0):
    """Run the demo; return the rows of the result table as (name, mae_mm, rmse_mm, seconds)."""
    predictor = Predictor.from_checkpoint(model_path, device=device)
    s = predictor.scale
    pair = load_pair(SAMPLE_DIR, 'art')
    truth = crop_to_multiple(disparity_to_metres(pair['depth']), s)
    rgb = crop_to_multiple(pair['rgb'], s)
    # A few missing regions, as a sensor has them (0 = no measurement; NaN for the picture).
    depth_lr = kinect_holes(bicubic_downsample(truth, s), np.random.default_rng(seed),
                            edge_fraction=0.0, random_holes=6, max_radius=6)
    depth_lr[depth_lr == 0] = np.nan
    methods = [('bicubic', BicubicUpsampler(s)), ('guided filter', GuidedFilterUpsampler(s)),
               (f"{predictor.info['arch']} {s}x", predictor)]
    low, high = float(np.nanmin(truth)), float(np.nanmax(truth))
    top = [tile(rgb[:, :, ::-1], 'colour (guidance)'),
           tile(colorize(depth_lr, low, high), f'input depth {depth_lr.shape[1]}x'
                f'{depth_lr.shape[0]}, holes'),
           tile(colorize(truth, low, high), 'ground truth')]
    middle, bottom, rows = [], [], []
    for name, upsampler in methods:
        started = time.perf_counter()
        result = upsampler(depth_lr, rgb)
        seconds = time.perf_counter() - started
        rows.append((name, 1000 * mae(result, truth), 1000 * rmse(result, truth), seconds))
        middle.append(tile(colorize(result, low, high), name))
        bottom.append(tile(colorize(np.abs(result - truth), 0, ERROR_RANGE_M, cv2.COLORMAP_HOT),
                           f'|{name} - truth|, MAE {rows[-1][1]:.1f} mm'))
    picture = np.vstack([np.hstack(top), np.hstack(middle), np.hstack(bottom)])
    if not write_image(output, picture):
        raise OSError(f"could not write '{output}'")
    return rows


@interruptible('depth_sr_demo')
def main(argv=None):
    """Entry point of depth_sr_demo."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='', help=MODEL_HELP)
    parser.add_argument('--device', default='auto', type=device_option,
                        help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--output', default='demo_output.png', help='picture to write')
    args = parser.parse_args(argv)
    # The picture must not replace the model, nor the sample it is made of.
    problem = (unwritable(args, ('output',), inputs=('model',), paths=(SAMPLE_DIR,))
               or image_format_problem(args.output))
    model_path = resolve_model_path(args.model)
    problem = problem or missing_input('--model', model_path)
    if problem:
        print(f'depth_sr_demo: {problem}', file=sys.stderr)
        return 2
    try:
        rows = run(model_path, args.device, args.output)
    except (CheckpointError, RuntimeError, OSError, ValueError) as error:
        print(f'depth_sr_demo: {error}', file=sys.stderr)
        return 1
    print(f'model: {model_path}')
    print('| method | MAE (mm) | RMSE (mm) | time (s) |')
    print('|---|---|---|---|')
    for name, mae_mm, rmse_mm, seconds in rows:
        print(f'| {name} | {mae_mm:.2f} | {rmse_mm:.2f} | {seconds:.2f} |')
    errors = {name: (mae_mm, rmse_mm) for name, mae_mm, rmse_mm, _ in rows}
    network = rows[-1][0]
    lost = [metric for i, metric in enumerate(('MAE', 'RMSE'))
            if errors[network][i] >= errors['guided filter'][i]]
    if lost:
        print(f"The network's {' and '.join(lost)} is not below the guided filter's here. This "
              'sample is clean depth (bicubic downscaling and a few holes, no noise); a model '
              'trained for camera noise, as the default is, gives up some clean accuracy for it '
              '(models/README.md). --model ahmf_x4.pt runs the clean-protocol weights.')
    print(f'wrote {args.output}: colour, input and truth; each result; each error '
          f'(black = no estimate; errors saturate at {ERROR_RANGE_M * 100:.0f} cm)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
