"""
Short RGB-D sequences along a camera path, for the player and the benchmark.

Made from the sample pair shipped in the package (Middlebury "Art"): a viewpoint that pans and
zooms over it, resampled to a 640x480 colour camera.
"""

import cv2
from depth_sr_ros.data.degradations import bicubic_downsample
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair, SAMPLE_DIR
import numpy as np

COLOR_SIZE = (640, 480)  # width, height of the simulated colour camera
FOCAL = 525.0  # pixels, a Kinect-like field of view at 640x480


def make_sequence(frames, scale):
    """
    Return ``frames`` (depth_lr metres, colour RGB uint8, depth_hr metres) along a camera path.

    The path is a smooth loop: a 4:3 window that pans and zooms over the sample and is
    resampled to COLOR_SIZE, so consecutive frames differ like a hand-held camera's.
    """
    width, height = COLOR_SIZE
    if width % scale or height % scale:
        raise ValueError(f'scale {scale} does not divide the colour size {width}x{height}')
    pair = load_pair(SAMPLE_DIR, 'art')
    depth = disparity_to_metres(pair['depth'])
    rgb = pair['rgb']
    h, w = depth.shape
    out = []
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        win_w = w * (0.85 + 0.1 * np.sin(phase))
        win_h = win_w * 3 / 4
        x0 = (w - win_w) * (0.5 + 0.5 * np.cos(phase))
        y0 = (h - win_h) * (0.5 + 0.5 * np.sin(2 * phase))
        affine = np.array([[win_w / width, 0, x0], [0, win_h / height, y0]])
        flags = cv2.WARP_INVERSE_MAP
        color = cv2.warpAffine(rgb, affine, COLOR_SIZE, flags=cv2.INTER_LINEAR | flags,
                               borderMode=cv2.BORDER_REPLICATE)
        depth_hr = cv2.warpAffine(depth, affine, COLOR_SIZE, flags=cv2.INTER_NEAREST | flags,
                                  borderMode=cv2.BORDER_REPLICATE)
        out.append((bicubic_downsample(depth_hr, scale), color, depth_hr))
    return out
