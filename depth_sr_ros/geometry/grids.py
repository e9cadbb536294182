"""
The grids the node works on for one colour camera and scale.

The node's output is depth on the colour camera's pixel grid (the *output grid*, optionally
shrunk to ``output_size``). The network works one scale step below it, on the *LR grid*.
"""

import dataclasses

import cv2
from depth_sr_ros.geometry.camera import Camera, GeometryError


@dataclasses.dataclass(frozen=True)
class Grids:
    """
    The output grid and the LR grid for one colour camera and scale.

    ``output`` is the colour camera, optionally resized (``output_size``). When its size is not
    a multiple of the scale, the network's grid is ``padded`` (the output grid grown at the
    bottom and right to the next multiple; K unchanged) and the result is cropped back, so the
    published image and camera_info are exactly the output grid. ``lr`` is ``padded`` / scale.
    """

    output: Camera
    padded: Camera
    lr: Camera
    scale: int


def plan_grids(color, scale, output_size=None):
    """
    Return the Grids for colour camera ``color`` at ``scale``.

    :param output_size: (width, height) to publish instead of the colour's own size (the colour
        image is shrunk to it and K scaled with it); None or (0, 0): the colour's size.
    """
    output = color
    if output_size and all(output_size):
        width, height = (int(v) for v in output_size)
        if width < scale or height < scale:
            raise GeometryError(f'output size {width}x{height} is smaller than the scale '
                                f'{scale}')
        output = color.resized(width, height)
    padded = output.padded(-(-output.width // scale) * scale, -(-output.height // scale) * scale)
    lr = padded.resized(padded.width // scale, padded.height // scale)
    return Grids(output, padded, lr, int(scale))


def crop_to_output(hr, grids):
    """Return the network's padded HR result cropped to the output grid."""
    return hr[:grids.output.height, :grids.output.width]


def resize_color(color, grids):
    """Return the colour image on the padded output grid (shrunk, then edge-padded)."""
    out = grids.output
    if color.shape[:2] != out.shape:
        color = cv2.resize(color, (out.width, out.height), interpolation=cv2.INTER_AREA)
    pad_rows, pad_cols = grids.padded.height - out.height, grids.padded.width - out.width
    if pad_rows or pad_cols:
        color = cv2.copyMakeBorder(color, 0, pad_rows, 0, pad_cols, cv2.BORDER_REPLICATE)
    return color
