"""
What the node does with one depth/colour pair, as plain functions and classes (no ROS graph).

``FrameProcessor`` turns (depth Image, colour Image, depth CameraInfo, colour CameraInfo) into
the output messages: super-resolved depth, its CameraInfo and optionally a PointCloud2.
``LatestSlot`` hands the newest pair from the subscription callbacks to the inference thread,
replacing (and counting) a pair that was not taken yet. ``LatencyStats`` keeps the numbers
that the diagnostics report.
"""

import collections
import dataclasses
import threading

from depth_sr_ros.conversions import (
    check_camera_info, color_to_array, depth_to_metres, depth_to_pointcloud, ImageFormatError,
    metres_to_image, OUTPUT_DEPTH_ENCODINGS, resample_color_to_depth, scale_camera_info)
import numpy as np


@dataclasses.dataclass
class Settings:
    """The per-frame options of the node (its dynamic parameters)."""

    output_encoding: str = 'input'  # 'input', '16UC1' or '32FC1'
    min_depth: float = 0.0  # metres; depth outside [min_depth, max_depth] is invalid
    max_depth: float = 65.0
    publish_points: bool = False
    points_rgb: bool = True


@dataclasses.dataclass
class FrameResult:
    """The messages made from one pair, and what the log should say about it."""

    depth: object
    camera_info: object
    points: object = None
    notices: list = dataclasses.field(default_factory=list)  # worth saying once
    warnings: list = dataclasses.field(default_factory=list)  # problems, to repeat (throttled)


def output_encoding(setting, input_encoding):
    """Return the encoding to publish: the input's (mono16 counts as 16UC1) or a forced one."""
    if setting == 'input':
        return '32FC1' if input_encoding == '32FC1' else '16UC1'
    if setting not in OUTPUT_DEPTH_ENCODINGS:
        raise ValueError(f"output_encoding must be 'input', '16UC1' or '32FC1', not {setting!r}")
    return setting


class FrameProcessor:
    """Super-resolve one registered depth/colour pair into ROS messages."""

    def __init__(self, upsampler):
        """Wrap an upsampler with the DepthUpsampler interface (inference.py)."""
        self.upsampler = upsampler
        self.scale = upsampler.scale

    def guidance(self, color_msg, depth_shape, color_info, depth_info, result):
        """
        Return (colour pixels, order, output CameraInfo) on the grid scale x depth.

        When the colour image is exactly scale x the depth size it is used as it is (a bad
        camera_info then only costs the output's camera_info, with a warning in ``result``);
        otherwise it is resampled through both cameras' intrinsics (the depth must be
        registered to the colour camera). Raises ImageFormatError when that cannot be done.
        """
        color, order = color_to_array(color_msg)
        h, w = depth_shape
        target = (h * self.scale, w * self.scale)
        if color.shape[:2] == target:
            for name, info, shape in (('colour', color_info, color.shape),
                                      ('depth', depth_info, depth_shape)):
                if info is None:
                    continue
                try:
                    check_camera_info(info, shape)
                except ImageFormatError as error:
                    result.warnings.append(f'{name} {error}; not used')
                    continue
                return color, order, scale_camera_info(info, target[1], target[0])
            return color, order, None
        if color_info is None or depth_info is None:
            raise ImageFormatError(
                f'colour {color.shape[1]}x{color.shape[0]} is not {self.scale}x depth {w}x{h}, '
                'and resampling it needs both camera_info messages, which have not arrived')
        check_camera_info(depth_info, depth_shape)
        image, info = resample_color_to_depth(color, color_info, depth_info, self.scale)
        result.notices.append(
            f'colour {color.shape[1]}x{color.shape[0]} is not {self.scale}x depth {w}x{h}: '
            f'resampling it to {target[1]}x{target[0]} through both intrinsics')
        return image, order, info

    def process(self, depth_msg, color_msg, depth_info, color_info, settings):
        """Return a FrameResult for one pair; raises ImageFormatError on unusable input."""
        result = FrameResult(None, None)
        depth = depth_to_metres(depth_msg, result.warnings)
        limits = f'[min_depth, max_depth] = [{settings.min_depth}, {settings.max_depth}] m'
        measured = np.isfinite(depth)
        with np.errstate(invalid='ignore'):
            outside = (depth < settings.min_depth) | (depth > settings.max_depth)
        depth[outside] = np.nan
        if not np.isfinite(depth).any():
            result.warnings.append(f'depth has no valid pixel in {limits}; publishing an '
                                   'all-invalid image')
        elif 2 * np.count_nonzero(outside) > np.count_nonzero(measured):
            # A few pixels beyond a deliberate range are normal; most of them is not.
            result.warnings.append(f'most measured depth is outside {limits} and treated as '
                                   'invalid (a unit mistake, or a range set too tight?)')
        depth_frame, color_frame = depth_msg.header.frame_id, color_msg.header.frame_id
        if depth_frame and color_frame and depth_frame != color_frame:
            result.warnings.append(
                f"depth frame '{depth_frame}' differs from colour frame '{color_frame}': the "
                'depth must be registered to the colour camera; publishing in the colour frame')
        color, order, info = self.guidance(color_msg, depth.shape, color_info, depth_info,
                                           result)
        upsampled = self.upsampler(depth, color, order)
        header = type(depth_msg.header)()
        header.stamp = depth_msg.header.stamp
        header.frame_id = color_frame
        encoding = output_encoding(settings.output_encoding, depth_msg.encoding)
        if info is not None:
            result.camera_info = info
            result.camera_info.header = header
            if settings.publish_points:
                rgb = None
                if settings.points_rgb and color.ndim == 3:
                    rgb = color if order == 'rgb' else color[:, :, ::-1]
                result.points = depth_to_pointcloud(upsampled, info, header, rgb)
        result.depth = metres_to_image(upsampled, encoding, header)
        return result


class LatestSlot:
    """A one-item mailbox between threads: put() replaces, get() waits; replacements counted."""

    def __init__(self):
        """Create an empty slot."""
        self._item = None
        self._condition = threading.Condition()
        self.replaced = 0
        self.closed = False

    def put(self, item):
        """Store ``item``; return True if it replaced one that was never taken."""
        with self._condition:
            replaced = self._item is not None
            if replaced:
                self.replaced += 1
            self._item = item
            self._condition.notify()
            return replaced

    def get(self, timeout=None):
        """Take the item, waiting up to ``timeout`` seconds; None on timeout or close."""
        with self._condition:
            if self._item is None and not self.closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self):
        """Wake a waiting get() for shutdown."""
        with self._condition:
            self.closed = True
            self._condition.notify_all()


class LatencyStats:
    """Counts and latencies over a reporting period, with percentiles."""

    def __init__(self, window=1000):
        """Keep at most ``window`` latency samples per period."""
        self.latencies = collections.deque(maxlen=window)
        self.inputs = 0
        self.outputs = 0

    def add_input(self):
        """Count one received pair."""
        self.inputs += 1

    def add_output(self, latency):
        """Count one published result with its stamp-to-publish latency in seconds."""
        self.outputs += 1
        self.latencies.append(latency)

    def take(self, period):
        """Return (input Hz, output Hz, p50 s, p95 s) for the last ``period`` s and reset."""
        lat = np.array(self.latencies) if self.latencies else np.array([np.nan])
        values = (self.inputs / period, self.outputs / period,
                  float(np.percentile(lat, 50)), float(np.percentile(lat, 95)))
        self.latencies.clear()
        self.inputs = self.outputs = 0
        return values
