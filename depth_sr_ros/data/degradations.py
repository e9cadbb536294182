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
    """
    Downscale by taking the top-left pixel of each scale x scale block (NYU v2 protocol).

    Its samples sit (scale - 1) / 2 HR pixels up and left of the block centres, where the other
    kernels, the bicubic skip and the node's registration put an LR pixel: a network trained
    on a mix with it learns a shift (docs/training.md). ``point`` is the centred alternative.
    """
    _check_multiple(depth, scale)
    return np.ascontiguousarray(np.asarray(depth, np.float32)[::scale, ::scale])


def point_downsample(depth, scale):
    """
    Downscale by sampling each block at its centre, centred like the other kernels.

    Odd scales take the centre pixel. Even scales, whose centre lies between four pixels, take
    the mean of those four: a small footprint that aliases almost like nearest-neighbour
    sampling, but mixes the two surfaces where an edge crosses it (as every kernel but
    nearest does, and as they do the ground truth's zero holes).
    """
    _check_multiple(depth, scale)
    depth = np.asarray(depth, np.float32)
    first, last = (scale - 1) // 2, scale // 2  # the central row/column indices of a block
    corners = [depth[r::scale, c::scale] for r in {first, last} for c in {first, last}]
    return np.ascontiguousarray(np.mean(corners, axis=0, dtype=np.float32))


# Downscaling kernels by name: the AHMF/PAG-Net protocol, the DKN/DCTNet one, and three more.
DOWNSAMPLERS = {
    'bicubic': bicubic_downsample,
    'antialiased': antialiased_bicubic_downsample,
    'area': area_downsample,
    'nearest': nearest_downsample,
    'point': point_downsample,
}


def add_gaussian_noise(depth, sigma, rng):
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (ToF-like; 5 in 0-255)."""
    return (depth + rng.normal(0.0, sigma, depth.shape)).astype(np.float32)


def kinect_hole_mask(depth, rng, edge_fraction=0.5, edge_threshold=None, random_holes=4,
                     max_radius=4):
    """
    Return the boolean mask of Kinect-like missing data for ``depth`` (True = lost).

    Structured-light cameras lose depth along occlusion edges (the projector's shadow) and in
    random blobs (dark or specular surfaces). Here a random part of the pixels next to depth
    discontinuities is lost, then ``random_holes`` discs of up to ``max_radius`` pixels.

    :param depth: (H, W) float32 depth; pixels that are not > 0 do not count for the range.
    :param rng: numpy Generator.
    :param edge_fraction: probability that a pixel on a depth edge is lost.
    :param edge_threshold: depth jump that counts as an edge; default 5 % of the depth range.
    :param random_holes: number of random disc-shaped holes.
    :param max_radius: largest hole radius in pixels.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if edge_threshold is None:
        valid = depth > 0
        span = float(depth[valid].max() - depth[valid].min()) if valid.any() else 0.0
        edge_threshold = 0.05 * span
    grad = np.maximum(np.abs(cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)),
                      np.abs(cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3))) / 4.0
    edges = cv2.dilate((grad > edge_threshold).astype(np.uint8), np.ones((3, 3), np.uint8))
    lost = (edges > 0) & (rng.random(depth.shape) < edge_fraction)
    holes = np.zeros(depth.shape, np.uint8)
    h, w = depth.shape
    for _ in range(random_holes):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(holes, centre, int(rng.integers(1, max_radius + 1)), 1, -1)
    return lost | (holes > 0)


def kinect_holes(depth, rng, **options):
    """Return a copy of ``depth`` with kinect_hole_mask()'s pixels set to 0 (invalid)."""
    depth = np.array(depth, dtype=np.float32)
    depth[kinect_hole_mask(depth, rng, **options)] = 0
    return depth


def flying_pixels(depth, rng, fraction=0.3, edge_threshold=0.05):
    """
    Return a copy of ``depth`` where pixels on depth edges take in-between depths.

    A Time-of-Flight pixel that sees both sides of an occlusion edge returns a mix of the two
    depths (a "flying pixel" between the surfaces). Each pixel whose 3x3 neighbourhood spans
    more than ``edge_threshold`` takes, with probability ``fraction``, a uniformly drawn depth
    between that neighbourhood's minimum and maximum.
    """
    depth = np.asarray(depth, dtype=np.float32)
    kernel = np.ones((3, 3), np.uint8)
    near, far = cv2.erode(depth, kernel), cv2.dilate(depth, kernel)
    edge = (far - near > edge_threshold) & (rng.random(depth.shape) < fraction)
    mixed = near + rng.random(depth.shape).astype(np.float32) * (far - near)
    return np.where(edge, mixed, depth).astype(np.float32)


# The sensor mix's ranges, in normalised depth units (the image's depth range is 0..1). Each
# sample draws its own strength in each range, down to none.
SENSOR_NOISE = 0.03  # largest noise standard deviation, reached at the far end
SENSOR_FLYING = 0.5  # largest share of edge pixels that fly
SENSOR_EDGE_LOSS = 0.5  # largest share of edge pixels lost
SENSOR_HOLES = 3  # most random holes; their radius is at most 1/32 of the image side


def sensor_degrade(depth, rng):
    """
    Return ``depth`` as a consumer depth camera would give it: NaN where no depth came back.

    ``depth`` is low-resolution depth normalised to the image's range (0..1), as the networks
    see it. In order: flying pixels at occlusion edges, noise that grows with depth, and lost
    data along edges and in random blobs. The strength of each is drawn per call, from none
    to the SENSOR_* limits, so that a network trained on the mix also meets nearly clean
    input.

    Noise: a structured-light camera measures disparity with about constant noise, so its
    depth noise grows with the square of the depth; a Time-of-Flight camera's grows as the
    returned light falls off with distance. Both are modelled as sigma * (0.25 + 0.75 * z^2),
    z the normalised depth. Which end of 0..1 is far is drawn too: the node normalises depth
    (large = far) and Middlebury's ground truth is disparity (large = near).
    """
    depth = np.asarray(depth, dtype=np.float32)
    out = flying_pixels(depth, rng, fraction=rng.uniform(0, SENSOR_FLYING))
    far = np.clip(out if rng.random() < 0.5 else 1 - out, 0, 1)
    sigma = rng.uniform(0, SENSOR_NOISE) * (0.25 + 0.75 * far ** 2)
    out = out + (rng.standard_normal(depth.shape) * sigma).astype(np.float32)
    lost = kinect_hole_mask(depth, rng, edge_fraction=rng.uniform(0, SENSOR_EDGE_LOSS),
                            edge_threshold=0.05,
                            random_holes=int(rng.integers(SENSOR_HOLES + 1)),
                            max_radius=max(1, min(depth.shape) // 32))
    if lost.all():
        lost[depth.shape[0] // 2, depth.shape[1] // 2] = False
    out[lost] = np.nan
    return out.astype(np.float32)
