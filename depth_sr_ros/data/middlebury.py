"""
Reading RGB-D pairs stored as DIR/depth/NAME.png and DIR/rgb/NAME.png.

This is the layout of the project's Middlebury data (see its README) and of the sample pair
shipped in this package. Depth files are 8- or 16-bit PNG or .npy, one channel; colour files
are PNG (BGR as OpenCV reads them) and are returned as RGB.
"""

import os

import cv2
import numpy as np

SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample')

# Colour images larger than their depth map are cropped by a known offset:
# (colour H, colour W, depth H, depth W) -> (first row, first column).
# Middlebury full size: rows 11-1098 and columns 7-1382 of the colour match the depth.
COLOR_CROPS = {(1110, 1390, 1088, 1376): (11, 7)}

# Middlebury depth PNGs hold disparity (larger is nearer). The demo and the player show it as
# metric depth Z = DISPARITY_TO_METRES / d, which puts the sample scenes at about 0.9-3 m.
DISPARITY_TO_METRES = 200.0

DEPTH_EXTENSIONS = ('.png', '.npy')


def list_pairs(data_dir):
    """Return the sorted names that have both a depth and a colour file in ``data_dir``."""
    depth_dir = os.path.join(data_dir, 'depth')
    rgb_dir = os.path.join(data_dir, 'rgb')
    if not os.path.isdir(depth_dir) or not os.path.isdir(rgb_dir):
        raise FileNotFoundError(f"'{data_dir}' must contain depth/ and rgb/ folders")
    depth_names = {os.path.splitext(f)[0] for f in os.listdir(depth_dir)
                   if f.endswith(DEPTH_EXTENSIONS)}
    rgb_names = {os.path.splitext(f)[0] for f in os.listdir(rgb_dir) if f.endswith('.png')}
    return sorted(depth_names & rgb_names)


def _read_depth(data_dir, name):
    for ext in DEPTH_EXTENSIONS:
        path = os.path.join(data_dir, 'depth', name + ext)
        if os.path.exists(path):
            depth = np.load(path) if ext == '.npy' else cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if depth is None or depth.ndim != 2:
                raise ValueError(f"'{path}' is not a one-channel depth image")
            return depth.astype(np.float32)
    raise FileNotFoundError(f"no depth file for '{name}' in '{data_dir}/depth'")


def load_pair(data_dir, name):
    """
    Load one pair as a dict: 'name', 'depth' float32 (H, W), 'rgb' uint8 (H, W, 3) RGB.

    ``name`` is a pair's name as list_pairs gives it, not a path: './02' would load pair 02
    under another name, past the checks that keep the test images out of a choice.
    """
    if not name or name != os.path.basename(name) or name in ('.', '..') or (
            os.altsep and os.altsep in name):
        raise ValueError(f"'{name}' is no pair name (a file name in depth/ and rgb/ without "
                         'its extension, not a path)')
    depth = _read_depth(data_dir, name)
    rgb_path = os.path.join(data_dir, 'rgb', name + '.png')
    bgr = cv2.imread(rgb_path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read colour image '{rgb_path}'")
    if bgr.shape[:2] != depth.shape:
        key = bgr.shape[:2] + depth.shape
        if key not in COLOR_CROPS:
            raise ValueError(f"'{name}': colour {bgr.shape[:2]} and depth {depth.shape} differ "
                             'in size and no crop is known for them')
        top, left = COLOR_CROPS[key]
        bgr = bgr[top:top + depth.shape[0], left:left + depth.shape[1]]
    return {'name': name, 'depth': depth, 'rgb': np.ascontiguousarray(bgr[:, :, ::-1])}


def disparity_to_metres(disparity):
    """Turn Middlebury disparity into depth in metres; 0 (unknown) becomes 0 (invalid)."""
    disparity = np.asarray(disparity, dtype=np.float32)
    with np.errstate(divide='ignore'):
        return np.where(disparity > 0, DISPARITY_TO_METRES / disparity, 0).astype(np.float32)
