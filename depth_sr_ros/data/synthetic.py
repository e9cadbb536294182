"""
A synthetic RGB-D scene generator: unlimited aligned pairs with the properties that matter.

Each scene is a slanted background plane with objects in front of it, drawn far to near with a
z-buffer, so that the depth is piecewise smooth with sharp occlusion edges. Every object has its
own colour, so colour edges match depth edges; on top of that the colour gets what depth does
not have (the texture-copy trap): stripes, checkers and noise texture, flat painted shapes on
surfaces, and smooth shading. Thin sticks give one- to three-pixel structures in both. A few
objects share the colour of what is behind them (a depth edge without a colour edge).

Depth is returned in Middlebury-like disparity units (larger is nearer, about 30-240) so that
synthetic and real pairs can be mixed in one training set.
"""

import cv2
import numpy as np


def _plane(rng, h, w, low, high):
    """Return a random slanted plane over (h, w) with values in about [low, high]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = rng.uniform(low, high)
    slope = (high - low) * 0.3
    gx, gy = rng.uniform(-slope, slope, 2) / max(h, w)
    return (centre + gx * (x - w / 2) + gy * (y - h / 2)).astype(np.float32)


def _shape_mask(rng, h, w):
    """Return a random filled shape (ellipse, rotated rectangle or polygon) as a bool mask."""
    mask = np.zeros((h, w), np.uint8)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    size = rng.uniform(0.08, 0.4) * min(h, w)
    kind = rng.integers(3)
    if kind == 0:
        axes = (int(size), int(size * rng.uniform(0.3, 1.0)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    elif kind == 1:
        box = ((cx, cy), (size * 2, size * rng.uniform(0.3, 2.0)), rng.uniform(0, 180))
        cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 1)
    else:
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = size * rng.uniform(0.4, 1.0, n)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    return mask > 0


def _texture(rng, h, w, color):
    """Return an (h, w, 3) float texture around ``color``: plain, stripes, checker or noise."""
    base = np.broadcast_to(np.asarray(color, np.float32), (h, w, 3)).copy()
    kind = rng.integers(4)
    if kind == 0:
        return base
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(3, 20)
    amp = rng.uniform(20, 80)
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        pattern = np.sign(np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period))
    elif kind == 2:
        pattern = np.sign(np.sin(x * np.pi / period) * np.sin(y * np.pi / period))
    else:
        noise = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
        pattern = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return base + amp * pattern[:, :, None] * rng.uniform(0.5, 1.0, 3).astype(np.float32)


def synthetic_pair(rng, height=256, width=256, objects=(3, 9), sticks=(0, 4), paintings=(1, 5)):
    """
    Return one synthetic pair as a dict: 'name', 'depth' float32 (H, W), 'rgb' uint8 RGB.

    :param rng: numpy Generator; the same seed gives the same scene.
    :param height: image height in pixels.
    :param width: image width in pixels.
    :param objects: range [low, high) of the number of objects.
    :param sticks: range of the number of thin sticks.
    :param paintings: range of the number of flat painted shapes (colour only).
    """
    h, w = height, width
    depth = _plane(rng, h, w, 40, 90)
    rgb = _texture(rng, h, w, rng.uniform(30, 220, 3))
    layers = sorted(rng.uniform(80, 230, int(rng.integers(*objects))))
    for near in layers:  # far to near: nearer objects overwrite
        mask = _shape_mask(rng, h, w)
        surface = _plane(rng, h, w, near - 15, near + 15)
        mask &= surface > depth  # z-buffer
        if rng.random() < 0.15:  # camouflage: same colour as what is behind it
            color = rgb[mask].mean(axis=0) if mask.any() else rng.uniform(30, 220, 3)
        else:
            color = rng.uniform(30, 220, 3)
        depth[mask] = surface[mask]
        rgb[mask] = _texture(rng, h, w, color)[mask]
    for _ in range(int(rng.integers(*paintings))):  # colour edges with no depth edge
        rgb[_shape_mask(rng, h, w)] = rng.uniform(30, 220, 3)
    for _ in range(int(rng.integers(*sticks))):  # thin structures in front
        stick = np.zeros((h, w), np.uint8)
        p0 = (int(rng.integers(w)), int(rng.integers(h)))
        p1 = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.line(stick, p0, p1, 1, int(rng.integers(1, 4)))
        near = rng.uniform(200, 240)
        depth[stick > 0] = np.maximum(depth[stick > 0], near)
        rgb[stick > 0] = rng.uniform(30, 220, 3)
    shading = _plane(rng, h, w, 0.6, 1.1)[:, :, None]  # smooth illumination, colour only
    rgb = np.clip(rgb * shading, 0, 255).astype(np.uint8)
    return {'name': 'synthetic', 'depth': depth.astype(np.float32), 'rgb': rgb}
