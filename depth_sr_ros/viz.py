"""Pictures for people: depth as false colour, labelled tiles (demo, evaluation, live demo)."""

import cv2
import numpy as np

TILE_WIDTH = 320


def colorize(values, low, high, colormap=cv2.COLORMAP_TURBO):
    """Map values in [low, high] to a BGR image; NaN pixels are black."""
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0, 1)
    image = cv2.applyColorMap((scaled * 255).astype(np.uint8), colormap)
    image[~np.isfinite(values)] = 0
    return image


def tile(image, label):
    """Resize a BGR image to TILE_WIDTH (nearest, to show pixels) and write a label on it."""
    h, w = image.shape[:2]
    out = cv2.resize(image, (TILE_WIDTH, round(h * TILE_WIDTH / w)),
                     interpolation=cv2.INTER_NEAREST)
    (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(out, (0, 0), (text_w + 8, text_h + 10), (0, 0, 0), -1)
    cv2.putText(out, label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def side_by_side(tiles):
    """Return tiles placed left to right, padded with black at the bottom to one height."""
    height = max(t.shape[0] for t in tiles)
    return np.hstack([np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles])
