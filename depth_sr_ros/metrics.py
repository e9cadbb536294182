"""Error metrics. Units are those of the arrays passed in (0-255 for Middlebury, cm for NYU)."""

import cv2
import numpy as np


def error_mask(prediction, target, valid=None):
    """Pixels that count: target > 0 (has ground truth), finite prediction, and ``valid``."""
    with np.errstate(invalid='ignore'):
        mask = np.isfinite(prediction) & np.isfinite(target) & (target > 0)
    return mask if valid is None else mask & valid


def mae(prediction, target, valid=None):
    """Mean absolute error over error_mask(), in the units of the inputs."""
    mask = error_mask(prediction, target, valid)
    return float(np.abs(prediction[mask] - target[mask]).mean())


def rmse(prediction, target, valid=None):
    """Root mean squared error over error_mask(), in the units of the inputs."""
    mask = error_mask(prediction, target, valid)
    return float(np.sqrt(np.square(prediction[mask] - target[mask]).mean()))


def shifted_rmse(prediction, target, shifts):
    """
    Return rmse() of ``prediction`` moved right and down by each of ``shifts`` (HR pixels).

    Bilinear resampling; one pixel set for every shift, so the values compare: a border as
    wide as the largest shift (rounded up) plus one is left out, and so is every pixel that
    any of the moved predictions has as NaN (holes spread differently at each shift). An
    output whose edges sit where the target's do is best at shift 0; one that lies up and left
    of the target, at a positive shift.
    """
    if not len(shifts):
        raise ValueError('shifted_rmse needs at least one shift')
    margin = int(np.ceil(max(abs(float(d)) for d in shifts))) + 1
    h, w = target.shape
    common = np.zeros((h, w), bool)
    common[margin:h - margin, margin:w - margin] = True
    prediction = np.asarray(prediction, np.float32)
    moved = [cv2.warpAffine(prediction, np.float32([[1, 0, d], [0, 1, d]]), (w, h),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
             for d in shifts]
    for image in moved:
        common &= np.isfinite(image)
    return [rmse(image, target, common) for image in moved]
