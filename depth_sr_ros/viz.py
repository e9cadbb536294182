"""Pictures for people: depth as false colour, labelled tiles (demo, evaluation, live demo)."""

import os

import cv2
from depth_sr_ros.files import replacing
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
    scale = label_scale(label, TILE_WIDTH - 8)
    (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (text_w + 8, text_h + 10), (0, 0, 0), -1)
    cv2.putText(out, label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def label_scale(label, width, largest=0.45):
    """Return the font scale at which ``label`` fits ``width`` pixels (at most ``largest``)."""
    (text_w, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, largest, 1)
    return largest if text_w <= width else largest * width / text_w


def colorbar(low, high, height, unit='m', colormap=cv2.COLORMAP_TURBO, ticks=5):
    """Return a vertical colour bar of colorize()'s scale, ``low`` at the bottom, labelled."""
    width = 64
    ramp = np.linspace(high, low, height, dtype=np.float32)[:, None].repeat(16, axis=1)
    image = np.zeros((height, width, 3), np.uint8)
    image[:, 4:20] = colorize(ramp, low, high, colormap)
    for i in range(ticks):
        y = int(round(i * (height - 1) / (ticks - 1)))
        value = high - i * (high - low) / (ticks - 1)
        cv2.line(image, (20, y), (24, y), (255, 255, 255), 1)
        text = f'{value:.2f} {unit}'
        cv2.putText(image, text, (26, min(max(y + 4, 10), height - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, label_scale(text, width - 28, 0.35),
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


def edge_window(depth, size):
    """
    Return (top, left) of the ``size`` = (height, width) window around the strongest depth edge.

    Where the most depth change lies (the blurred gradient's largest value): the place where
    super-resolution shows, and where a full-resolution crop lets one see it.
    """
    filled = np.nan_to_num(np.asarray(depth, np.float32), nan=float(np.nanmedian(depth)))
    gradient = np.hypot(cv2.Sobel(filled, cv2.CV_32F, 1, 0), cv2.Sobel(filled, cv2.CV_32F, 0, 1))
    h, w = size
    density = cv2.blur(gradient, (w, h))
    row, column = np.unravel_index(int(np.argmax(density)), density.shape)
    top = int(np.clip(row - h // 2, 0, max(0, depth.shape[0] - h)))
    left = int(np.clip(column - w // 2, 0, max(0, depth.shape[1] - w)))
    return top, left


def stack_rows(rows):
    """Return images placed top to bottom, padded with black at the right to one width."""
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def side_by_side(tiles):
    """Return tiles placed left to right, padded with black at the bottom to one height."""
    height = max(t.shape[0] for t in tiles)
    return np.hstack([np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles])


def image_format_problem(path, what='--output'):
    """Return why no picture can be written in the format of ``path``'s extension, or ''."""
    if not path or cv2.haveImageWriter(path):
        return ''
    return (f"{what} '{path}': no image format for the extension "
            f"'{os.path.splitext(path)[1]}' (e.g. .png or .jpg)")


def write_image(path, image):
    """
    Write ``image`` to ``path`` in the format its extension names, as cv2.imwrite does.

    The file is written beside ``path`` and moved into place once complete (files.replacing),
    so that a failure or Ctrl-C never leaves half a picture. Returns False, as cv2.imwrite
    does, when the image cannot be encoded or the file cannot be written.
    """
    try:
        encoded, data = cv2.imencode(os.path.splitext(path)[1], image)
    except cv2.error:  # no encoder for the extension
        return False
    if not encoded:
        return False
    try:
        with replacing(path) as f:
            f.write(data.tobytes())
    except OSError:
        return False
    return True
