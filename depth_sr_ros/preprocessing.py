"""
Pre- and post-processing shared by training and inference, in numpy and, side by side, in torch.

The torch twins do the same arithmetic on the model's device (the Predictor's device_io path);
tests hold each pair equal. torch is imported only by the twins, so the numpy path needs none.

The networks see depth normalised per image to [0, 1] over its valid pixels (min-max), and
RGB guidance as float in [0, 1]. Min-max normalisation makes a model independent of the depth
units: the same weights serve Middlebury disparities (0-255) during training and metres from a
camera at run time. Checkpoints record these choices in their ``preprocessing`` entry
(``PREPROCESSING`` below), and the predictor checks that it knows them.
"""

import cv2
import numpy as np

# What every checkpoint written by this package says about its input handling.
PREPROCESSING = {
    'depth_units': 'm',  # units of the predictor's input and output depth
    'depth_invalid': '0, NaN or inf',
    'depth_normalization': 'minmax',  # per image, over valid low-resolution pixels, to [0, 1]
    'hole_filling': 'nearest',  # invalid pixels take the nearest valid value before the network
    'rgb_order': 'rgb',
    'rgb_scale': 1.0 / 255.0,  # uint8 colour times this gives [0, 1]
}


def valid_depth_mask(depth):
    """Return the boolean mask of measured pixels: finite and greater than zero."""
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


def fill_missing(depth, valid):
    """
    Return a copy of ``depth`` where every invalid pixel takes its nearest valid value.

    Nearest by OpenCV's labelled distance transform with a 5x5 mask (a close approximation of
    the Euclidean distance). ``valid`` must contain at least one True pixel.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if valid.all():
        return depth.copy()
    if not valid.any():
        raise ValueError('cannot fill depth that has no valid pixel')
    # Zero pixels of the source are the valid ones; each gets its own label, and every pixel
    # receives the label of the nearest valid pixel.
    source = np.where(valid, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        source, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
    value_of_label = np.zeros(labels.max() + 1, dtype=np.float32)
    value_of_label[labels[valid]] = depth[valid]
    return value_of_label[labels]


def depth_range(depth, valid):
    """Return (low, high) of the valid depth, with high > low even for a flat image."""
    values = depth[valid]
    low = float(values.min())
    high = float(values.max())
    if high - low < 1e-6 * max(abs(high), 1.0):
        high = low + max(abs(low), 1.0) * 1e-3
    return low, high


def normalize_depth(depth, low, high):
    """Map depth from [low, high] to [0, 1] (float32)."""
    return ((depth - low) / (high - low)).astype(np.float32)


def denormalize_depth(depth, low, high):
    """Invert normalize_depth."""
    return (depth * (high - low) + low).astype(np.float32)


def finish_depth(out, low, high, valid, scale):
    """
    Return network output as metres: denormalised, NaN under invalid input and where not > 0.

    :param out: (s*h, s*w) normalised depth; ``valid`` is the (h, w) mask of the input.
    """
    out = denormalize_depth(out, low, high)
    no_source = np.repeat(np.repeat(~valid, scale, axis=0), scale, axis=1)
    with np.errstate(invalid='ignore'):
        out[no_source | ~(out > 0)] = np.nan
    return out


def finish_depth_torch(out, low, high, invalid, scale):
    """finish_depth on the device: ``out`` float tensor, ``invalid`` the (h, w) bool tensor."""
    out = out.float() * (high - low) + low
    invalid = invalid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return out.masked_fill(invalid | ~(out > 0), float('nan'))


def check_color(color, order='rgb'):
    """Raise ValueError unless ``color`` and ``order`` are what color_to_unit takes."""
    color = np.asarray(color)
    if order not in ('rgb', 'bgr'):
        raise ValueError(f"colour order must be 'rgb' or 'bgr', got {order!r}")
    if color.ndim != 2 and (color.ndim != 3 or color.shape[2] != 3):
        raise ValueError(f'colour must be (H, W, 3) or (H, W), got shape {color.shape}')
    if color.dtype != np.uint8 and not np.issubdtype(color.dtype, np.floating):
        raise ValueError(f'colour must be uint8 or float in [0, 1], got dtype {color.dtype}')
    if color.dtype != np.uint8 and color.size and float(np.nanmax(color)) > 1.0 + 1e-3:
        # uint8 values as floats: the network would see a colour image 255 times too bright
        raise ValueError(f'float colour must be in [0, 1], this one reaches '
                         f'{float(np.nanmax(color)):g} (pass uint8, or divide by 255)')


def color_to_unit(color, order='rgb'):
    """
    Return the colour image as float32 (H, W, 3) RGB in [0, 1].

    :param color: (H, W, 3) or (H, W) uint8 image, or float in [0, 1]. Grey images are
        repeated over the three channels.
    :param order: channel order of a 3-channel ``color``, 'rgb' or 'bgr'.
    """
    check_color(color, order)
    color = np.asarray(color)
    if color.ndim == 2:
        color = np.repeat(color[:, :, None], 3, axis=2)
    elif order == 'bgr':
        color = color[:, :, ::-1]
    if color.dtype == np.uint8:
        return color.astype(np.float32) * np.float32(PREPROCESSING['rgb_scale'])
    return color.astype(np.float32)


def color_to_unit_torch(color, order='rgb'):
    """
    color_to_unit on the device: (H, W, 3) or (H, W) uint8 tensor -> (1, 3, H, W) float.

    Channel first and batched, as the networks take it.
    """
    guide = color.float().mul_(PREPROCESSING['rgb_scale'])
    guide = guide[None, None] if guide.ndim == 2 else guide.permute(2, 0, 1)[None]
    if guide.shape[1] == 1:
        return guide.expand(1, 3, -1, -1)
    return guide.flip(1) if order == 'bgr' else guide
