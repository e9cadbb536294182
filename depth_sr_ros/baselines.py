"""
Classical baselines with the same interface as the network Predictor (see inference.py).

- BicubicUpsampler: plain bicubic interpolation (OpenCV INTER_CUBIC), the papers' first row.
- GuidedFilterUpsampler: bicubic, then the colour guided filter of He, Sun and Tang
  ("Guided image filtering", ECCV 2010 / TPAMI 2013) with the HR colour image as guide,
  which snaps depth edges to colour edges.
"""

import cv2
from depth_sr_ros.upsampler import DepthUpsampler
import numpy as np


def bicubic_resize(image, width, height):
    """Resize with OpenCV's bicubic kernel (no antialiasing), as the papers' protocol does."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def guided_filter(guide, source, radius, eps):
    """
    Filter ``source`` (H, W) with the colour guided filter, guide (H, W, 3) in [0, 1].

    :param guide: float32 guidance image.
    :param source: float32 image to filter.
    :param radius: the box windows are (2 * radius + 1) pixels wide.
    :param eps: regularisation of the local linear model; larger is smoother.
    """
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.boxFilter(x, -1, size, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_guide = box(guide)
    mean_source = box(source)
    cov_guide_source = box(guide * source[:, :, None]) - mean_guide * mean_source[:, :, None]
    var_guide = np.empty(guide.shape[:2] + (3, 3), dtype=np.float32)
    for i in range(3):
        for j in range(i, 3):
            var = box(guide[:, :, i] * guide[:, :, j]) - mean_guide[:, :, i] * mean_guide[:, :, j]
            var_guide[:, :, i, j] = var_guide[:, :, j, i] = var
    var_guide += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var_guide, cov_guide_source[:, :, :, None])[:, :, :, 0]
    b = mean_source - np.einsum('hwc,hwc->hw', a, mean_guide)
    return np.einsum('hwc,hwc->hw', box(a), guide) + box(b)


class BicubicUpsampler(DepthUpsampler):
    """Bicubic interpolation of the (hole-filled) depth."""

    def __init__(self, scale, color_order='rgb'):
        """Build the upsampler for an integer ``scale``."""
        super().__init__(color_order)
        self.scale = int(scale)

    def _upsample(self, depth, guide):
        return bicubic_resize(depth, guide.shape[1], guide.shape[0])


class GuidedFilterUpsampler(DepthUpsampler):
    """Bicubic interpolation refined by the colour guided filter."""

    def __init__(self, scale, radius=None, eps=1e-4, color_order='rgb'):
        """
        Build the upsampler.

        :param scale: integer upsampling factor.
        :param radius: box radius in HR pixels; default scale / 2, half an LR pixel each way.
        :param eps: regularisation in units of the [0, 1] guidance, squared.

        The defaults were the best of radius s/2, s, 2s and eps 1e-4, 1e-3, 1e-2 on four
        Middlebury training images (01, 03, 05, 07) at 4x, 8x and 16x: about 10 % lower MAE
        than bicubic there.
            color_order: channel order of 3-channel colour input, 'rgb' or 'bgr'.

        """
        super().__init__(color_order)
        self.scale = int(scale)
        self.radius = int(radius) if radius is not None else max(1, self.scale // 2)
        self.eps = float(eps)

    def _upsample(self, depth, guide):
        coarse = bicubic_resize(depth, guide.shape[1], guide.shape[0])
        return guided_filter(guide, coarse, self.radius, self.eps)
