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
    if 2 * margin >= min(h, w):
        raise ValueError(f'shifts up to {margin - 1} px leave no pixel of a {w}x{h} image '
                         f'inside their border of {margin}')
    common = np.zeros((h, w), bool)
    common[margin:h - margin, margin:w - margin] = True
    prediction = np.asarray(prediction, np.float32)
    moved = [cv2.warpAffine(prediction, np.float32([[1, 0, d], [0, 1, d]]), (w, h),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
             for d in shifts]
    for image in moved:
        common &= np.isfinite(image)
    return [rmse(image, target, common) for image in moved]


# between_surfaces: a pixel is near a depth edge when it lies within EDGE_WINDOW // 2 pixels of
# a step between neighbouring target pixels of more than EDGE_MIN_JUMP of the target's whole
# range (a slope changes less from pixel to pixel) and its EDGE_WINDOW-wide window holds both
# surfaces (they differ by more than that too); its output floats when it lies more than
# EDGE_MARGIN of the local jump away from both surfaces.
EDGE_WINDOW = 5
EDGE_MIN_JUMP = 0.05
EDGE_MARGIN = 0.1


def near_edges(target, span):
    """
    Return a mask of the pixels near depth edges of ``target`` (NaN = no value).

    Near means within EDGE_WINDOW // 2 pixels of a step between two neighbouring valid pixels
    of more than EDGE_MIN_JUMP * ``span`` (the image's whole range); a step into a pixel
    without a value is none.
    """
    with np.errstate(invalid='ignore'):  # NaN steps are no steps
        across = np.abs(np.diff(target, axis=1)) > EDGE_MIN_JUMP * span
        down = np.abs(np.diff(target, axis=0)) > EDGE_MIN_JUMP * span
    step = np.zeros(target.shape, bool)
    step[:, :-1] |= across
    step[:, 1:] |= across
    step[:-1] |= down
    step[1:] |= down
    kernel = np.ones((EDGE_WINDOW, EDGE_WINDOW), np.uint8)
    return cv2.dilate(step.astype(np.uint8), kernel) > 0


def edge_surfaces(target, span, valid):
    """
    Return (counted, near, far): the pixels between_surfaces counts, and their two surfaces.

    ``near`` and ``far`` are the minimum and maximum of the target's valid pixels in each
    pixel's EDGE_WINDOW-wide window. A pixel counts when it is near an edge (near_edges, steps
    measured against ``span``), its window holds both surfaces (they differ by more than
    EDGE_MIN_JUMP * ``span``; a band pixel two pixels beside a step between flat surfaces sees
    one, and could never float) and its target lies on one of them (by EDGE_MARGIN of the
    jump), so the target itself never floats. ``valid``: the pixels with a value.
    """
    target = np.asarray(target, np.float32)
    edge = near_edges(np.where(valid, target, np.nan), span)
    kernel = np.ones((EDGE_WINDOW, EDGE_WINDOW), np.uint8)
    near = cv2.erode(np.where(valid, target, np.inf).astype(np.float32), kernel)
    far = cv2.dilate(np.where(valid, target, -np.inf).astype(np.float32), kernel)
    with np.errstate(invalid='ignore', over='ignore'):  # windows without a value: +-inf
        jump = far - near
        on_surface = (target <= near + EDGE_MARGIN * jump) | (target >= far - EDGE_MARGIN * jump)
        counted = edge & valid & on_surface & (jump > EDGE_MIN_JUMP * span)
    return counted, near, far


def between_surfaces(prediction, target):
    """
    Return the share of output pixels near depth edges that float between the two surfaces.

    Near an edge the target's window holds a near and a far surface (edge_surfaces, which
    says which pixels count). An output there that lies between them by more than EDGE_MARGIN
    of the jump belongs to neither: a point cloud shows it floating in the air, and a costmap
    reads it as an obstacle. NaN without edges. Pixels without target or output do not count.
    """
    target = np.asarray(target, np.float32)
    valid = np.isfinite(target) & (target > 0)
    if not valid.any():
        return float('nan')
    span = float(target[valid].max() - target[valid].min())
    counted, near, far = edge_surfaces(target, span, valid)
    with np.errstate(invalid='ignore', over='ignore'):
        margin = EDGE_MARGIN * (far - near)
        counted &= np.isfinite(prediction)
        floating = counted & (prediction > near + margin) & (prediction < far - margin)
    total = int(counted.sum())
    return float(floating.sum()) / total if total else float('nan')
