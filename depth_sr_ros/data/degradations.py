"""
Degradations that turn HR depth into the LR input of a network (pure functions).

The papers' protocol (see the data README): crop H and W to multiples of the scale, then
downscale with plain bicubic interpolation, no antialiasing (OpenCV INTER_CUBIC on float32).
NYU v2 uses nearest-neighbour downscaling. The sensor-like degradations take an explicit
numpy Generator, so a seed reproduces them exactly.
"""

import cv2
import numpy as np


def crop_to_multiple(image, scale):
    """Crop the bottom and right of an (H, W, ...) array so that H and W divide by ``scale``."""
    h, w = image.shape[:2]
    return image[:h - h % scale, :w - w % scale]


def _check_multiple(depth, scale):
    h, w = depth.shape
    if h % scale or w % scale:
        raise ValueError(f'depth {w}x{h} is not a multiple of scale {scale}; crop it first')


def bicubic_downsample(depth, scale):
    """
    Downscale (H, W) depth by ``scale`` with bicubic interpolation and no antialiasing.

    H and W must be multiples of ``scale`` (see crop_to_multiple).
    """
    _check_multiple(depth, scale)
    h, w = depth.shape
    return cv2.resize(np.asarray(depth, np.float32), (w // scale, h // scale),
                      interpolation=cv2.INTER_CUBIC)


def _cubic(x, a=-0.5):
    """Keys' cubic convolution kernel (a = -0.5, as PIL's and Matlab's bicubic)."""
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def _antialias_weights(size, scale):
    """Return the (size // scale, size) matrix of antialiased bicubic downscaling weights."""
    out = size // scale
    centres = (np.arange(out) + 0.5) * scale - 0.5
    taps = np.arange(size)
    weights = _cubic((taps[None, :] - centres[:, None]) / scale)
    return weights / weights.sum(axis=1, keepdims=True)  # window cut at the border: renormalise


def antialiased_bicubic_downsample(depth, scale):
    """
    Downscale (H, W) depth by ``scale`` with antialiased bicubic interpolation.

    The bicubic kernel is stretched by the scale, so every HR pixel contributes (the
    convention of PIL's Image.resize(BICUBIC), which DKN, DCTNet and JIIF use to make their LR
    inputs; checked against Pillow 12 on float images: within 1e-5 at 2x, 4x and 8x). H and W
    must be multiples of ``scale``.
    """
    _check_multiple(depth, scale)
    h, w = depth.shape
    rows, cols = _antialias_weights(h, scale), _antialias_weights(w, scale)
    return (rows @ np.asarray(depth, np.float64) @ cols.T).astype(np.float32)


def area_downsample(depth, scale):
    """Downscale by the mean of each scale x scale block (OpenCV INTER_AREA)."""
    _check_multiple(depth, scale)
    h, w = depth.shape
    return cv2.resize(np.asarray(depth, np.float32), (w // scale, h // scale),
                      interpolation=cv2.INTER_AREA)


def nearest_downsample(depth, scale):
    """Downscale by taking the top-left pixel of each scale x scale block (NYU v2 protocol)."""
    _check_multiple(depth, scale)
    return np.ascontiguousarray(np.asarray(depth, np.float32)[::scale, ::scale])


# Downscaling kernels by name: the AHMF/PAG-Net protocol, the DKN/DCTNet one, and two more.
DOWNSAMPLERS = {
    'bicubic': bicubic_downsample,
    'antialiased': antialiased_bicubic_downsample,
    'area': area_downsample,
    'nearest': nearest_downsample,
}


def add_gaussian_noise(depth, sigma, rng):
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (ToF-like; 5 in 0-255)."""
    return (depth + rng.normal(0.0, sigma, depth.shape)).astype(np.float32)


def kinect_holes(depth, rng, edge_fraction=0.5, edge_threshold=None, random_holes=4,
                 max_radius=4):
    """
    Return a copy of ``depth`` with Kinect-like missing data set to 0 (invalid).

    Structured-light cameras lose depth along occlusion edges (the projector's shadow) and in
    random blobs (dark or specular surfaces). Here a random part of the pixels next to depth
    discontinuities is removed, then ``random_holes`` discs of up to ``max_radius`` pixels.

    :param depth: (H, W) float32 depth, 0 = invalid.
    :param rng: numpy Generator.
    :param edge_fraction: probability that a pixel on a depth edge is removed.
    :param edge_threshold: depth jump that counts as an edge; default 5 % of the depth range.
    :param random_holes: number of random disc-shaped holes.
    :param max_radius: largest hole radius in pixels.
    """
    depth = np.array(depth, dtype=np.float32)
    valid = depth > 0
    if edge_threshold is None:
        span = float(depth[valid].max() - depth[valid].min()) if valid.any() else 0.0
        edge_threshold = 0.05 * span
    grad = np.maximum(np.abs(cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)),
                      np.abs(cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3))) / 4.0
    edges = cv2.dilate((grad > edge_threshold).astype(np.uint8), np.ones((3, 3), np.uint8))
    depth[(edges > 0) & (rng.random(depth.shape) < edge_fraction)] = 0
    holes = np.zeros(depth.shape, np.uint8)
    h, w = depth.shape
    for _ in range(random_holes):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(holes, centre, int(rng.integers(1, max_radius + 1)), 1, -1)
    depth[holes > 0] = 0
    return depth
