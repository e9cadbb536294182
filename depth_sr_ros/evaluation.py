"""
The papers' evaluation protocol as functions: degrade ground truth, upsample, measure.

Used by depth_sr_eval, by training's validation, by model selection and by the zoo tables, so
that every number comes from the same code; with the tables and command-line options they
share.
"""

import zlib

from depth_sr_ros.baselines import BicubicUpsampler, GuidedFilterUpsampler
from depth_sr_ros.data.degradations import (
    add_gaussian_noise, antialiased_bicubic_downsample, bicubic_downsample, crop_to_multiple,
    nearest_downsample, sensor_degrade)
from depth_sr_ros.data.middlebury import disparity_to_metres
from depth_sr_ros.metrics import between_surfaces, error_mask, mae, rmse, shifted_rmse
from depth_sr_ros.preprocessing import (
    denormalize_depth, depth_range, fill_missing, normalize_depth, valid_depth_mask)
import numpy as np

NOISE_SIGMA = 5.0  # in 0-255 units, the papers' ToF-like noisy case
# What is added to the LR input: nothing, the papers' Gaussian noise of NOISE_SIGMA, a depth
# camera's noise, flying pixels and holes (data.degradations.sensor_degrade), or 'rig': the
# LR input made as the node makes it from a simulated depth camera beside the colour camera
# (data.rig.simulate_rig: its own resolution, lens, baseline, faults, the colour image's dark
# surfaces lost and a calibration error, then the node's alignment; the protocol's kernel is
# then not used). 'rig_offset': the same rig and sensor faults with the calibration error a
# real rig has before the node's alignment (its depth 1 to 2.5 depth pixels off the colour),
# registered as it is (the node with alignment:=off); 'rig_aligned': the same rigs (the same
# draws) after the node's alignment, what the node gives by default. 'metric': no noise, but
# the ground truth as metric depth in millimetres (middlebury.disparity_to_metres), as a depth
# camera gives it and the node normalises it (large = far), where the pairs hold disparity
# (large = near); the errors are then in millimetres.
NOISES = ('', 'gaussian', 'sensor', 'rig', 'rig_offset', 'rig_aligned', 'metric')


# Protocol -> how the ground truth is downscaled: the AHMF/PAG-Net papers' plain bicubic
# (cv2, no antialiasing), DKN/DCTNet/JIIF's antialiased bicubic (PIL's), NYU's nearest.
PROTOCOLS = {'middlebury': bicubic_downsample, 'antialiased': antialiased_bicubic_downsample,
             'nyu': nearest_downsample}


def degrade(depth, scale, protocol, rng=None, noise='gaussian', color=None):
    """
    Return the LR input of the protocol, with ``noise`` (one of NOISES) if rng is given.

    ``color``: the HR colour image, which 'rig_aligned' aligns the depth to.

    'sensor' degrades the depth in the LR image's own 0..1 range (as the networks see it) and
    leaves NaN where the camera would return nothing; every upsampler fills those pixels
    before it runs and leaves their blocks NaN, so the metrics skip them for every method.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {sorted(PROTOCOLS)}, not {protocol!r}')
    if noise not in NOISES:
        raise ValueError(f'noise must be one of {NOISES}, not {noise!r}')
    low = PROTOCOLS[protocol](depth, scale)
    if rng is None or noise in ('', 'metric'):  # prepare made the truth metric
        return low
    if noise == 'gaussian':
        return add_gaussian_noise(low, NOISE_SIGMA, rng)
    if noise.startswith('rig'):
        from depth_sr_ros.data.rig import simulate_rig, truth_values  # numpy and the geometry
        if noise == 'rig_aligned' and color is None:
            raise ValueError("noise 'rig_aligned' needs the colour image")
        seen, near, far = truth_values(depth)
        low = simulate_rig(seen, scale, rng, offset=noise != 'rig', color=color,
                           align=noise != 'rig_offset')
        return denormalize_depth(low, near, far)
    valid = valid_depth_mask(low)  # the ground truth's own holes stay as they are
    near, far = depth_range(low, valid)
    seen = normalize_depth(fill_missing(low, valid), near, far)
    out = denormalize_depth(sensor_degrade(seen, rng), near, far)
    out[~valid] = low[~valid]
    return out


def noise_rng(name):
    """Return the generator of an image's noise, seeded by its name alone."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def prepare(pair, scale, protocol, rng=None, noise='gaussian'):
    """Return (ground truth, colour, LR input) of a pair under the protocol (see degrade)."""
    truth, rgb = crop_to_multiple(pair['depth'], scale), crop_to_multiple(pair['rgb'], scale)
    if noise == 'metric':
        truth = disparity_to_metres(truth) * 1000  # millimetres; its holes (0) stay holes
    return truth, rgb, degrade(truth, scale, protocol, rng, noise, rgb)


def evaluate(methods, pairs, scale, protocol='middlebury', noise='', keep=None, shifts=()):
    """
    Return {'images': [...], 'average': {...}} with MAE/RMSE per method and image.

    :param methods: name -> upsampler with the DepthUpsampler interface.
    :param pairs: dicts from middlebury.load_pair ('name', 'depth', 'rgb').
    :param scale: upsampling factor.
    :param protocol: 'middlebury' (bicubic degradation) or 'nyu' (nearest).
    :param noise: what to add to the LR input, one of NOISES (see degrade), seeded by the
        image's name.
    :param keep: a dict to fill with the first pair's 'name', 'truth', 'rgb' and 'results'
        (method -> output), for ``figure``.
    :param shifts: HR pixel shifts; each method and image (and the average) also gets
        'shifted_rmse', metrics.shifted_rmse at each, which shows whether outputs are aligned.

    Every method is scored on the same pixels of an image: those where the truth has a value
    and every method an output ('unscored' of 'truth_pixels', per image and in all: the
    truth's pixels left out because some method gave none there, as under the LR input's
    holes). With noise 'rig_aligned' each image also gets
    'moved': whether the alignment moved its rig's depth (its LR input differs from the same
    rig's under 'rig_offset'). A pair whose ground truth has no valid pixel, or none with an
    output from every method, is a ValueError.
    """
    images = []
    for pair in pairs:
        # Each image's noise from its own name: a subset of the images reproduces their rows.
        rng = noise_rng(pair['name']) if noise else None
        truth, rgb, low = prepare(pair, scale, protocol, rng, noise)
        if not error_mask(truth, truth).any():  # it would drop out of every average unsaid
            raise ValueError(f"pair '{pair['name']}': its ground truth has no valid pixel")
        row = {'name': pair['name']}
        if noise == 'rig_aligned':  # the same rig unaligned: did the alignment move it?
            unaligned = prepare(pair, scale, protocol, noise_rng(pair['name']), 'rig_offset')[2]
            row['moved'] = not np.array_equal(low, unaligned, equal_nan=True)
        results = {method: upsampler(low, rgb) for method, upsampler in methods.items()}
        # One set of pixels for every method: where the truth has a value and every method
        # an output. A method cannot leave out the pixels it finds hard; 'unscored' counts
        # the truth's pixels that some method left without an output.
        has_truth = error_mask(truth, truth)
        scored = has_truth.copy()
        for result in results.values():
            scored &= np.isfinite(result)
        row['truth_pixels'] = int(np.count_nonzero(has_truth))
        row['unscored'] = int(np.count_nonzero(has_truth & ~scored))
        if not scored.any():
            raise ValueError(f"pair '{pair['name']}': no pixel has a value from every method")
        for method, result in results.items():
            result = np.where(scored, result, np.nan)
            row[method] = {'mae': mae(result, truth), 'rmse': rmse(result, truth),
                           'between': between_surfaces(result, truth)}
            if shifts:
                row[method]['shifted_rmse'] = shifted_rmse(result, truth, shifts)
        if keep is not None and not images:
            keep.update(name=pair['name'], truth=truth, rgb=rgb, results=results)
        images.append(row)
    keys = ('mae', 'rmse', 'between') + (('shifted_rmse',) if shifts else ())
    # nanmean: an image without depth edges has no floating share (NaN); MAE and RMSE are
    # finite on every image (each has scored pixels).
    average = {m: {k: np.nanmean([r[m][k] for r in images], axis=0).tolist() for k in keys}
               for m in methods}
    return {'images': images, 'average': average,
            'truth_pixels': sum(r['truth_pixels'] for r in images),
            'unscored': sum(r['unscored'] for r in images)}


def evaluate_network(model, pairs, scale, protocol='middlebury', noise='', device='cpu'):
    """
    Return a bare network's {'mae', 'rmse'} averaged over ``pairs``, as depth_sr_eval has it.

    float32 and contiguous memory, so that the numbers measure the weights, not the inference
    arithmetic (the Predictor's default would be bfloat16 on some CPUs). The network is
    converted in place and left in eval mode.
    """
    # here, not at the top: the rest of this module serves the baselines without torch
    from depth_sr_ros.inference import Acceleration, Predictor
    predictor = Predictor(model, device=str(device),
                          acceleration=Acceleration('float32', channels_last=False))
    return evaluate({'model': predictor}, pairs, scale, protocol, noise)['average']['model']


def table(header, rows):
    """Return a markdown table: ``header`` cells, then one line per row of cells."""
    lines = ['| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def markdown(report, methods, metric='mae'):
    """
    Return the report as a markdown table: one row per method, one column per image.

    'between' (metrics.between_surfaces) is shown in per cent.
    """
    names = [r['name'] for r in report['images']]

    def cell(value):
        return f'{100 * value:.1f} %' if metric == 'between' else f'{value:.3f}'
    return table(['method', *names, 'average'],
                 [[m, *(cell(r[m][metric]) for r in report['images']),
                   cell(report['average'][m][metric])] for m in methods])


def shift_table(report, methods, shifts):
    """Return a markdown table of each method's average shifted RMSE, one column per shift."""
    return table(['method', *(f'{d:+g}' for d in shifts)],
                 [[m, *(f'{v:.3f}' for v in report['average'][m]['shifted_rmse'])]
                  for m in methods])


def compared_methods(predictor):
    """Return {name: upsampler}: bicubic, the guided filter, and the model ('ARCH Sx')."""
    s = predictor.scale
    return {'bicubic': BicubicUpsampler(s), 'guided filter': GuidedFilterUpsampler(s),
            f"{predictor.info['arch']} {s}x": predictor}


def add_protocol_options(parser):
    """Add --protocol and --noise / --sensor / --rig... (dest 'noise', one of NOISES)."""
    parser.add_argument('--protocol', default='middlebury', choices=sorted(PROTOCOLS),
                        help='middlebury: plain bicubic downscaling (AHMF, PAG-Net); '
                             'antialiased: antialiased bicubic (DKN, DCTNet, JIIF); nyu: nearest')
    noisy = parser.add_mutually_exclusive_group()
    noisy.add_argument('--noise', action='store_const', const='gaussian', dest='noise',
                       default='', help="add Gaussian noise, sigma 5 (AHMF's Table II)")
    noisy.add_argument('--sensor', action='store_const', const='sensor', dest='noise',
                       help="add a depth camera's noise, flying pixels and holes "
                            '(data.degradations.sensor_degrade)')
    noisy.add_argument('--rig', action='store_const', const='rig', dest='noise',
                       help='make the LR input as the node makes it from a simulated depth '
                            'camera beside the colour camera (data.rig.simulate_rig; the '
                            "protocol's kernel is not used)")
    noisy.add_argument('--rig-offset', action='store_const', const='rig_offset', dest='noise',
                       help='as --rig, with the calibration error before alignment: the depth '
                            '1 to 2.5 depth pixels off the colour image (alignment:=off)')
    noisy.add_argument('--rig-aligned', action='store_const', const='rig_aligned',
                       dest='noise', help="the --rig-offset rigs after the node's alignment "
                                          "(the node's default)")
    noisy.add_argument('--metric-depth', action='store_const', const='metric', dest='noise',
                       help='the ground truth as metric depth, as a depth camera gives it '
                            '(large = far; the pairs hold disparity), no noise; errors in mm')
