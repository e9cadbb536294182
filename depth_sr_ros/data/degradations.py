"""
Degradations that turn HR depth into the LR input of a network (pure functions).

The papers' protocol (see the data README): crop H and W to multiples of the scale, then
downscale with plain bicubic interpolation, no antialiasing (OpenCV INTER_CUBIC on float32).
"""

import cv2
import numpy as np


def crop_to_multiple(image, scale):
    """Crop the bottom and right of an (H, W, ...) array so that H and W divide by ``scale``."""
    h, w = image.shape[:2]
    return image[:h - h % scale, :w - w % scale]


def bicubic_downsample(depth, scale):
    """
    Downscale (H, W) depth by ``scale`` with bicubic interpolation and no antialiasing.

    H and W must be multiples of ``scale`` (see crop_to_multiple).
    """
    h, w = depth.shape
    if h % scale or w % scale:
        raise ValueError(f'depth {w}x{h} is not a multiple of scale {scale}; crop it first')
    return cv2.resize(np.asarray(depth, np.float32), (w // scale, h // scale),
                      interpolation=cv2.INTER_CUBIC)
