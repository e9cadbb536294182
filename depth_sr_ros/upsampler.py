"""
The one interface of every depth upsampler, with no torch import.

Every upsampler (the network Predictor in inference.py, the ONNX one in onnx_predictor.py, the
baselines in baselines.py) is called the same way::

    depth_hr = upsampler(depth_lr, color)

``depth_lr`` is (h, w) depth in metres where 0, NaN or inf mean "no measurement"; ``color`` is
the (s*h, s*w, 3) colour image (uint8, RGB unless the upsampler was built with 'bgr'), or a grey
(s*h, s*w) image. The result is float32 (s*h, s*w) depth in metres with NaN where there is no
estimate: under every invalid input pixel, and wherever the estimate is not positive.
DepthUpsampler does the shared work (checks, hole filling, normalisation, marking);
subclasses only map normalised depth and guidance to normalised HR depth.
"""

import time

from depth_sr_ros.preprocessing import (
    check_color, color_to_unit, depth_range, fill_missing, finish_depth, normalize_depth,
    valid_depth_mask)
import numpy as np


def check_geometry(depth_shape, color_shape, scale):
    """Raise ValueError unless the colour image is exactly ``scale`` times the depth size."""
    h, w = depth_shape[:2]
    big_h, big_w = color_shape[:2]
    if min(h, w, big_h, big_w) <= 0:
        raise ValueError(f'empty image: depth {w}x{h}, colour {big_w}x{big_h}')
    if big_h % h or big_w % w:
        raise ValueError(f'colour {big_w}x{big_h} is not an integer multiple of depth {w}x{h} '
                         f'(ratios {big_w / w:.3g} and {big_h / h:.3g})')
    if big_h // h != big_w // w:
        raise ValueError(f'colour {big_w}x{big_h} and depth {w}x{h} have different width and '
                         f'height ratios ({big_w // w} and {big_h // h})')
    if big_h // h != scale:
        raise ValueError(f'colour {big_w}x{big_h} is {big_h // h}x depth {w}x{h}, but this '
                         f'upsampler works at {scale}x')


class StageClock:
    """Wall time per stage of the last call: ``mark(name)`` closes the stage ``name``."""

    def __init__(self, sync=None):
        """Start with no stages; ``sync`` (e.g. torch.cuda.synchronize) runs before each mark."""
        self.times = {}
        self.sync = sync
        self._last = time.perf_counter()

    def start(self):
        """Forget the previous call's times and start the clock."""
        self.times = {}
        self._last = time.perf_counter()

    def mark(self, name):
        """Add the time since the previous mark to stage ``name``."""
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._last
        self._last = now


class DepthUpsampler:
    """Shared input handling of every upsampler; subclasses implement ``_upsample``."""

    #: upsampling factor
    scale = 1

    def __init__(self, color_order='rgb'):
        """Set the channel order of 3-channel colour input, 'rgb' or 'bgr'."""
        color_to_unit(np.zeros((1, 1, 3), np.uint8), color_order)  # validates the order
        self.color_order = color_order
        self.clock = StageClock()  # stage times of the last call, for diagnostics

    def _upsample(self, depth, guide):
        """Map normalised (h, w) depth and (s*h, s*w, 3) guidance to normalised HR depth."""
        raise NotImplementedError

    def __call__(self, depth_lr, color, color_order=None):
        """
        Return (s*h, s*w) float32 depth in metres, NaN where there is no estimate.

        ``color_order`` ('rgb' or 'bgr') overrides the order given at construction.
        """
        self.clock.start()
        depth_lr = np.asarray(depth_lr, dtype=np.float32)
        if depth_lr.ndim != 2:
            raise ValueError(f'depth must be a 2-D array, got shape {depth_lr.shape}')
        check_geometry(depth_lr.shape, np.shape(color), self.scale)
        h, w = depth_lr.shape
        s = self.scale
        valid = valid_depth_mask(depth_lr)
        if not valid.any():  # the colour is refused as _run's color_to_unit would refuse it
            check_color(color, color_order or self.color_order)
            return np.full((h * s, w * s), np.nan, dtype=np.float32)
        low, high = depth_range(depth_lr, valid)
        depth = normalize_depth(fill_missing(depth_lr, valid), low, high)
        return self._run(depth, color, color_order or self.color_order, low, high, valid)

    def _run(self, depth, color, order, low, high, valid):
        """Return metres from normalised LR depth: guidance, network and finish in numpy."""
        guide = color_to_unit(color, order)
        self.clock.mark('preprocess')
        out = self._upsample(depth, guide)
        self.clock.mark('upsample')
        out = finish_depth(out, low, high, valid, self.scale)
        self.clock.mark('postprocess')
        return out
