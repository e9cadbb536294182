"""Error metrics. Units are those of the arrays passed in (0-255 for Middlebury, cm for NYU)."""

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
