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
import math
import threading

import cv2
from depth_sr_ros.alignment import (
    Aligner, finer_grid, lr_max_shift, lr_min_correction, matching_grid, whole_pixels)
from depth_sr_ros.geometry.camera import same_pixels
from depth_sr_ros.geometry.grids import crop_to_output, plan_grids, resize_color
from depth_sr_ros.geometry.registration import onto_lr_grid
from depth_sr_ros.ros import frame_name, same_frame
from depth_sr_ros.ros.conversions import (
    camera_from_info, camera_info_message, color_to_array, depth_to_metres, depth_to_pointcloud,
    ImageFormatError, metres_to_image, stamp_ns)
from depth_sr_ros.ros.parameters import PARAMETERS
import numpy as np

# Largest output grid served by default: 1920x1088, 1080p padded to a multiple of 16 (a
# 4000x3000 frame took 188 s and 8.4 GiB).
MAX_OUTPUT_PIXELS = PARAMETERS['max_output_pixels'].default
ROUTE_TEXT = {
    'lr_grid': 'same frame as the colour, already at the LR size',
    'registered': 'registered to the colour camera: median of the valid samples per LR pixel',
    'raw': "the depth camera's own frame: back-projected, moved by depth_to_color, z-buffered",
}
# Said once when the colour camera has a lens distortion (D) that the output keeps.
LENS_NOTICE = (
    "the colour camera_info has lens distortion (D): the output lies on the colour image's "
    'own grid, distortion and all, with that camera_info, as image_raw does. '
    "depth_image_proc and rviz's DepthCloud take depth as rectified: rectify depth_sr/image "
    "with image_proc's rectify (interpolation 0, nearest), or use depth_sr/points, which "
    'follow the lens. A colour image that is already rectified (image_rect*) is read through '
    'that D again: give the node the raw one')
# /diagnostics warns when less than this share of the output that the depth camera covers
# comes out valid (expected_coverage).
COVERAGE_WARN_SHARE = 0.9


@dataclasses.dataclass
class Settings:
    """The per-frame options of the node (its dynamic parameters; see parameters.py)."""

    output_encoding: str = PARAMETERS['output_encoding'].default
    min_depth: float = PARAMETERS['min_depth'].default  # m; outside [min, max] is invalid
    max_depth: float = PARAMETERS['max_depth'].default
    publish_points: bool = PARAMETERS['publish_points'].default
    points_rgb: bool = PARAMETERS['points_rgb'].default
    alignment: str = PARAMETERS['alignment'].default
    alignment_offset: list = dataclasses.field(
        default_factory=lambda: list(PARAMETERS['alignment_offset'].default))


class CameraInfoNotYet(ImageFormatError):
    """A pair that needs a camera_info none of which has arrived yet (a driver's first pair)."""


@dataclasses.dataclass
class FrameResult:
    """The messages made from one pair, and what the log should say about it."""

    depth: object
    camera_info: object
    points: object = None
    notices: list = dataclasses.field(default_factory=list)  # worth saying once
    warnings: list = dataclasses.field(default_factory=list)  # problems, to repeat (throttled)
    advice: list = dataclasses.field(default_factory=list)  # problems worth saying once
    # (valid share of the output, share of the grid the depth camera covers)
    coverage: tuple = None
    # (right, down) output pixels by which the depth sat off the colour and was moved back
    offset: tuple = (0.0, 0.0)


def output_encoding(setting, input_encoding):
    """
    Return the encoding to publish: the input's (mono16 counts as 16UC1) or a forced one.

    The setting's allowed values are checked by the parameter table; metres_to_image refuses
    an encoding it cannot write.
    """
    if setting == 'input':
        return '32FC1' if input_encoding == '32FC1' else '16UC1'
    return setting


def plan_route(raw, depth_shape, grids, depth_camera=None):
    """
    Return the route ('lr_grid', 'registered' or 'raw') by which a depth image reaches the LR grid.

    ``raw``: the depth is in its own camera's frame (see FrameProcessor.process).
    ``depth_camera``: the depth's camera from its camera_info, when that has come. Depth of
    the LR grid's size is taken as it is only when that camera is the LR grid's (or unknown);
    with other intrinsics (a cut, a shifted principal point) it is registered through them.
    """
    if raw:
        return 'raw'
    if tuple(depth_shape[:2]) == grids.lr.shape and (
            depth_camera is None or same_pixels(depth_camera, grids.lr)):
        return 'lr_grid'
    return 'registered'


def input_holes(depth, offset=(0.0, 0.0)):
    """
    Return where ``depth``, on the output grid itself, has no value: the output keeps them.

    For depth that arrives on the output grid (registered at the colour's size): the LR grid
    takes an LR pixel whose samples are mostly valid, so a hole of a pixel or two (a thin
    object without a return, a shadow's edge) would come back filled with the depth beside
    it, where the sensor said it does not know. ``offset``: (right, down) output pixels by
    which the depth sat off the colour image and was moved back (the holes move with it, to
    the nearest pixel: alignment.whole_pixels).
    """
    holes = ~np.isfinite(depth)
    dx, dy = (int(v) for v in whole_pixels(offset))
    if dx or dy:  # the output pixel (x - dx, y - dy) shows the input pixel (x, y)
        h, w = holes.shape
        moved = np.zeros_like(holes)
        if abs(dx) < w and abs(dy) < h:
            moved[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = \
                holes[max(dy, 0):h - max(-dy, 0), max(dx, 0):w - max(-dx, 0)]
        holes = moved
    return holes


def samples_per_lr_pixel(depth_shape, grids):
    """Return how many depth samples there are per LR pixel (their image sizes' ratio)."""
    return depth_shape[0] * depth_shape[1] / (grids.lr.width * grids.lr.height)


def scale_advice(depth_shape, grids, lr_depth, route):
    """
    Return (one sentence on what the sensor gives the model, whether it is a problem).

    The sentence says how many depth samples land per LR pixel, the scale whose LR grid would
    match the sensor, and when most LR pixels stay empty. It is a problem when the depth
    camera is coarser than the LR grid (most LR pixels are then interpolated between samples
    and the network sees a smooth mesh, not a measurement) or when most LR pixels get no
    depth. ('', False) for the plain LR-grid route.
    """
    if route == 'lr_grid':
        return '', False
    per_pixel = samples_per_lr_pixel(depth_shape, grids)
    sentence = (f'{depth_shape[1]}x{depth_shape[0]} depth lands about {per_pixel:.1f} samples '
                f'per LR pixel of {grids.lr.width}x{grids.lr.height} ({route} route)')
    matching = grids.scale / math.sqrt(per_pixel) if per_pixel > 0 else grids.scale
    better = [s for s in (2, 4, 8, 16) if s != grids.scale]
    closest = min(better, key=lambda s: abs(math.log(s / matching)))
    # A finer scale s gives each LR pixel (s / scale)^2 of the samples: only one that still
    # leaves at least one is suggested, or its own advice would point back (8x at 2.7 samples
    # per LR pixel was told 4x, where 0.7 asked for 8x again).
    finer = [s for s in better if s < grids.scale and per_pixel * (s / grids.scale) ** 2 >= 1]
    problem = False
    suggested = min(finer) if finer else closest
    article = 'an' if suggested == 8 else 'a'
    if finer:
        sentence += f": {article} {suggested}x model would use more of the sensor's resolution"
    elif per_pixel < 1.0 and closest > grids.scale:
        problem = True
        sentence += (f': {article} {closest}x model would suit the sensor better (most LR '
                     'pixels lie between depth samples and are interpolated, not measured)')
    if float(np.mean(~np.isfinite(lr_depth))) > 0.5:
        problem = True
        # No share in the text: the node says each advice once, and a share that moves with
        # the scene would make every frame's advice a new one.
        sentence += ('; most LR pixels get no depth (is the depth camera looking where the '
                     'colour camera looks?)')
    return sentence, problem


def expected_coverage(lr_depth, per_pixel, holes=None, scale=1):
    """
    Return the share of the LR grid that the depth camera covers.

    ``holes``: the input's holes on the output grid, where the output keeps them
    (input_holes); the share is then of the output grid (``scale`` output pixels an LR pixel,
    the LR grid padded past it), without them.

    That is the valid LR pixels and the gaps between them that are no wider than the spacing
    of the depth samples on the grid (a morphological closing): a gap the sensor's sampling
    explains should have been filled by the registration, while occlusions, missing returns
    and the parts of the view the depth camera does not see are wider.

    :param per_pixel: depth samples per LR pixel (samples_per_lr_pixel; 1 on the LR grid).
    """
    valid = np.isfinite(lr_depth).astype(np.uint8)
    radius = max(1, math.ceil(1 / math.sqrt(per_pixel))) if per_pixel > 0 else 1
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    covered = cv2.morphologyEx(valid, cv2.MORPH_CLOSE, kernel)
    if holes is None:
        return float(covered.mean())
    h, w = holes.shape
    covered = np.repeat(np.repeat(covered > 0, scale, axis=0), scale, axis=1)[:h, :w]
    return float((covered & ~holes).mean())


def health(period, seconds_without_pair, stale_after, frame_seconds=None, unpublished=0):
    """
    Return (level, message) of the node's /diagnostics: level 'OK', 'WARN' or 'STALE'.

    :param period: LatencyStats.take's dict for the last reporting period.
    :param seconds_without_pair: since the last pair arrived (or the node started).
    :param stale_after: seconds without a pair after which the node's output is stale.
    :param frame_seconds: how long the frame in progress has taken so far (None: none is).
    :param unpublished: frames of the period that ended without an output (skipped, failed).
    """
    if period['pairs'] == 0:
        level = 'STALE' if seconds_without_pair >= stale_after else 'WARN'
        return level, f'no depth/colour pair for {seconds_without_pair:.1f} s'
    if period['outputs'] == 0:
        if frame_seconds is not None and not unpublished:
            # A frame slower than the period (a large grid on a CPU) is work, not a fault,
            # until it takes as long as a stale input would.
            level = 'WARN' if frame_seconds >= stale_after else 'OK'
            return level, f'one frame in progress for {frame_seconds:.1f} s'
        return 'WARN', 'pairs arrive, none published'
    valid, expected = period['valid_share'], period['expected_share']
    if not valid > 0:  # e.g. millimetres sent as 32FC1: beyond max_depth, all of it
        return 'WARN', ('every output pixel is invalid: no input depth within [min_depth, '
                        'max_depth] (a unit mistake? see the log)')
    if valid < COVERAGE_WARN_SHARE * expected:
        return 'WARN', (f'output {valid:.0%} valid where the depth camera covers {expected:.0%}: '
                        'depth is lost in registration (see the scale advice in the log)')
    return 'OK', 'ok'


class FrameProcessor:
    """
    Super-resolve one depth/colour pair into ROS messages on the colour camera's grid.

    The output grid is the colour image's (optionally shrunk to ``output_size``), with the
    colour camera_info; the network runs on that grid / scale (geometry.grids.plan_grids). The
    depth reaches it by the route plan_route picks from the messages: already on the LR grid,
    registered to the colour camera at another size, or raw from its own camera (then
    ``depth_to_color`` is needed).
    """

    def __init__(self, upsampler, output_size=None, max_output_pixels=MAX_OUTPUT_PIXELS,
                 max_shift=PARAMETERS['alignment_max_shift'].default):
        """
        Wrap an upsampler with the DepthUpsampler interface (upsampler.py).

        :param output_size: (width, height) to publish instead of the colour's size, or None.
        :param max_output_pixels: frames whose (padded) output grid is larger are refused.
        :param max_shift: the largest offset alignment searches and applies, output pixels.
        """
        if output_size and any(output_size) and min(output_size) < upsampler.scale:
            raise ValueError(f'output_size {output_size[0]}x{output_size[1]}: each side at '
                             f'least the scale ({upsampler.scale}), or 0x0 for the colour size')
        self.aligner = Aligner(lr_max_shift(max_shift, upsampler.scale),
                               min_correction=lr_min_correction(upsampler.scale),
                               scale=upsampler.scale)
        self.upsampler = upsampler
        self.output_size = tuple(output_size) if output_size and all(output_size) else None
        self.max_output_pixels = int(max_output_pixels)
        self._grids = {}  # (colour camera) -> Grids
        self.camera = None  # the colour camera of the last frame served (lr_shape)

    @property
    def scale(self):
        """Return the upsampler's (the model's) scale."""
        return self.upsampler.scale

    def lr_shape(self, scale):
        """
        Return the network input's (h, w) at ``scale`` on the last frame's camera, else None.

        A new model warms up at the size the camera gives it (a compile or a CUDA graph is for
        one size), which a model of another scale sees on another LR grid.
        """
        if self.camera is None:
            return None
        return plan_grids(self.camera, scale, self.output_size).lr.shape

    def grids(self, color_camera):
        """Return the output and LR grids for a colour camera (cached)."""
        grids = self._grids.get(color_camera)
        if grids is None:
            if len(self._grids) >= 8:
                self._grids.clear()
            grids = plan_grids(color_camera, self.scale, self.output_size)
            self._grids[color_camera] = grids
        return grids

    def color_camera(self, color_shape, color_info, depth_info, depth_shape, same, result):
        """
        Return (camera, the camera_info it came from): the colour's, else the depth's.

        The depth's serves when the frames are the same and the colour is exactly scale x the
        depth. Raises ImageFormatError when neither is usable, so that no depth goes out
        without its camera_info.
        """
        problems = []
        if color_info is not None:
            try:
                return camera_from_info(color_info, color_shape), color_info
            except ImageFormatError as error:
                problems.append(f'colour {error}')
        else:
            problems.append('no colour camera_info has arrived')
        exact = (color_shape[0] == depth_shape[0] * self.scale
                 and color_shape[1] == depth_shape[1] * self.scale)
        if same and exact and depth_info is not None:
            try:
                camera = camera_from_info(depth_info, depth_shape)
            except ImageFormatError as error:
                problems.append(f'depth {error}')
            else:
                result.warnings.append(f"{problems[0]}; using the depth's camera_info scaled "
                                       f'{self.scale}x')
                return camera.resized(color_shape[1], color_shape[0]), depth_info
        error = CameraInfoNotYet if color_info is None else ImageFormatError
        raise error('; '.join(problems) + ': the output needs the colour camera geometry, and '
                    'depth_sr/image is never published without it')

    @staticmethod
    def own_camera(depth_info, depth_shape, raw, grids):
        """
        Return the camera of depth the size of the LR grid from its camera_info, else None.

        None too when the camera_info is unusable: such depth is then taken as it is, as when
        no camera_info has come (plan_route).
        """
        if raw or depth_info is None or tuple(depth_shape[:2]) != grids.lr.shape:
            return None
        try:
            return camera_from_info(depth_info, depth_shape)
        except ImageFormatError:
            return None

    @staticmethod
    def depth_camera(depth_shape, route, depth_info, color_camera, result):
        """
        Return the camera of depth that reaches the LR grid by ``route`` (None: 'lr_grid').

        Its camera_info's; for depth registered at the colour's own size the colour camera
        when that camera_info has not arrived or cannot be used (said in ``result``). Raises
        ImageFormatError when there is none.
        """
        if route == 'lr_grid':
            return None
        same_size = route == 'registered' and depth_shape == color_camera.shape
        if depth_info is not None:
            try:
                return camera_from_info(depth_info, depth_shape)
            except ImageFormatError as error:
                if not same_size:
                    raise ImageFormatError(f'depth {error}') from None
                result.warnings.append(f"depth {error}; using the colour camera's, whose size "
                                       'the registered depth has')
        if same_size:
            return color_camera
        raise CameraInfoNotYet(f'{route} depth {depth_shape[1]}x{depth_shape[0]} needs the '
                               'depth camera_info, which has not arrived')

    def lr_depth(self, depth, route, depth_camera, grids, depth_to_color, offset=(0.0, 0.0)):
        """
        Return the depth on the LR grid by ``route`` (see plan_route).

        :param depth_camera: the depth's camera (depth_camera; None on the 'lr_grid' route).
        :param offset: (right, down) LR pixels by which the depth sits off the colour image
            (geometry.registration.onto_lr_grid).
        """
        if route == 'raw' and depth_to_color is None:
            raise ImageFormatError("no depth-to-colour transform (see the node's warning)")
        return onto_lr_grid(depth, route, depth_camera, grids.lr, depth_to_color, offset)

    def alignment_depth(self, low, depth, route, depth_camera, grids, depth_to_color, offset):
        """
        Return (depth, finer): what the aligner matches with the colour image's edges.

        Depth the node registers itself is registered again on the frames the aligner
        correlates, on a grid alignment.finer_grid times finer than the LR grid where that is
        more than 1; otherwise it is the LR depth.
        """
        finer = finer_grid(grids.scale)
        if route == 'lr_grid' or finer == 1 or not self.aligner.due():
            return low, 1
        fine = dataclasses.replace(grids, lr=matching_grid(grids.lr, finer))
        return self.lr_depth(depth, route, depth_camera, fine, depth_to_color,
                             tuple(v * finer for v in offset)), finer

    def offset(self, settings, grids, route):
        """
        Return the (right, down) LR pixels to take off the depth under ``settings``.

        Depth that arrives on the LR grid ('lr_grid' route) is moved by whole LR pixels, the
        nearest to the offset, since none of its values is resampled.
        """
        if settings.alignment != 'auto':
            # Back to 'auto' later, the aligner starts again: the rig may have been
            # recalibrated meanwhile, and frames pooled before are stale.
            self.aligner.reset()
        if settings.alignment == 'fixed':
            offset = tuple(float(v) / grids.scale for v in settings.alignment_offset)
        elif settings.alignment == 'auto':
            offset = self.aligner.correction(
                grids.lr.shape, 1 if route == 'lr_grid' else finer_grid(grids.scale))
        else:
            return (0.0, 0.0)
        if route == 'lr_grid':
            return whole_pixels(offset)
        return offset

    def process_pair(self, depth_msg, color_msg, depth_infos, color_infos, settings,
                     extrinsics):
        """
        Return a FrameResult for a pair as it arrives: the one entry of the node and the tools.

        Matches each image's camera_info by its stamp (ros.sync.CameraInfoStore) and, when the
        frames differ (same_frame), asks ``extrinsics`` for the depth-to-colour transform
        (``lookup(depth_frame, color_frame, stamp)`` -> (Transform, '') or (None, reason):
        ros.extrinsics.ExtrinsicSource or StaticExtrinsics). Raises ImageFormatError (a frame
        to skip, with the reason) or what ``process`` raises.
        """
        depth_frame = frame_name(depth_msg.header.frame_id)
        color_frame = frame_name(color_msg.header.frame_id)
        transform = None
        fixed = getattr(extrinsics, 'fixed', None)  # the depth_to_color the user gave
        if not same_frame(depth_frame, color_frame):
            transform, reason = extrinsics.lookup(depth_frame, color_frame,
                                                  depth_msg.header.stamp)
            if transform is None:
                raise ImageFormatError(f'frame skipped: {reason}')
        elif fixed is not None and not (depth_frame and color_frame):
            # A frame_id left empty says nothing; a depth_to_color given says the depth is raw.
            transform = fixed
        result = self.process(depth_msg, color_msg,
                              depth_infos.match(stamp_ns(depth_msg.header.stamp)),
                              color_infos.match(stamp_ns(color_msg.header.stamp)), settings,
                              transform)
        if fixed is not None and transform is None:
            result.notices.append(f'depth_to_color is not used: the depth is in the colour '
                                  f'frame {color_frame!r} (registered by its driver)')
        return result

    def process(self, depth_msg, color_msg, depth_info, color_info, settings,
                depth_to_color=None):
        """
        Return a FrameResult for one pair; raises ImageFormatError on unusable input.

        :param depth_info: the depth's CameraInfo (or None); needed off the LR-grid route.
        :param depth_to_color: geometry.transform.Transform from the depth's optical frame to the
            colour's, for raw depth (frames differ, or a frame_id is empty and the transform was
            given); None otherwise.
        """
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
        color, order = color_to_array(color_msg)
        depth_frame = frame_name(depth_msg.header.frame_id)
        color_frame = frame_name(color_msg.header.frame_id)
        raw = depth_to_color is not None or not same_frame(depth_frame, color_frame)
        camera, camera_info = self.color_camera(color.shape, color_info, depth_info,
                                                depth.shape, not raw, result)
        grids = self.grids(camera)
        pixels = grids.padded.width * grids.padded.height
        if pixels > self.max_output_pixels:
            raise ImageFormatError(
                f'output grid {grids.padded.width}x{grids.padded.height} (LR '
                f'{grids.lr.width}x{grids.lr.height}) exceeds max_output_pixels '
                f'{self.max_output_pixels}: set output_size (depth_sr_bag: --output-size) '
                'smaller or raise the limit')
        route = plan_route(raw, depth.shape, grids,
                           self.own_camera(depth_info, depth.shape, raw, grids))
        result.notices.append(
            f'depth {depth.shape[1]}x{depth.shape[0]} reaches the {grids.lr.width}x'
            f'{grids.lr.height} LR grid by the {route} route ({ROUTE_TEXT[route]}); output '
            f'{grids.output.width}x{grids.output.height} on the colour camera grid')
        if camera.distorted:
            result.notices.append(LENS_NOTICE)
        depth_camera = self.depth_camera(depth.shape, route, depth_info, camera, result)
        offset = self.offset(settings, grids, route)
        low = self.lr_depth(depth, route, depth_camera, grids, depth_to_color, offset)
        shown = resize_color(color, grids)  # on the padded output grid, as the network sees it
        if settings.alignment == 'auto':
            seen, finer = self.alignment_depth(low, depth, route, depth_camera, grids,
                                               depth_to_color, offset)
            if self.aligner.observe(seen, shown, finer, whole=route == 'lr_grid'):
                dx, dy = (v * grids.scale for v in self.aligner.estimate.correction)
                check = ('the depth_to_color extrinsic (or the transform on tf2)' if route == 'raw'
                         else "the camera's depth-to-colour calibration (its driver registered "
                         'the depth)')
                result.advice.append(
                    f'depth sits {abs(dx):.1f} px {"right of" if dx >= 0 else "left of"} and '
                    f'{abs(dy):.1f} px {"below" if dy >= 0 else "above"} the colour image '
                    f'(output pixels, from their edges): moved into place; check {check} '
                    '(alignment:=off to keep the depth as registered)')
        result.offset = tuple(v * grids.scale for v in offset)
        advice, problem = scale_advice(depth.shape, grids, low, route)
        if advice:
            (result.advice if problem else result.notices).append(advice)
        self.camera = camera
        upsampled = crop_to_output(self.upsampler(low, shown, order), grids)
        holes = None
        if route == 'registered' and same_pixels(depth_camera, grids.output):
            holes = input_holes(depth, result.offset)
            upsampled = np.where(holes, np.float32(np.nan), upsampled)
        per_pixel = 1.0 if route == 'lr_grid' else samples_per_lr_pixel(depth.shape, grids)
        result.coverage = (float(np.isfinite(upsampled).mean()),
                           expected_coverage(low, per_pixel, holes, grids.scale))
        header = type(depth_msg.header)()
        header.stamp = depth_msg.header.stamp
        # On the colour camera's grid: its frame, or on the other routes (one frame) the
        # depth's when the colour has none. Raw depth has left its own frame.
        header.frame_id = color_frame if raw else (color_frame or depth_frame)
        if raw and not color_frame:
            result.warnings.append('the colour image has no frame_id, so the output, registered '
                                   'to the colour camera, has none either: tf2 and rviz cannot '
                                   'place it')
        elif not raw and bool(depth_frame) != bool(color_frame):
            # One name and no other: taken as one frame, which a camera's raw depth is not.
            named, empty = ((f'depth (frame {depth_frame!r})', 'colour') if depth_frame
                            else (f'colour (frame {color_frame!r})', 'depth'))
            result.warnings.append(
                f'the {empty} image has no frame_id, so the depth is taken as registered to the '
                f'colour camera and the output is in the frame of the {named}; if the depth is '
                "in its own camera's frame, give depth_to_color or set the frame_id")
        result.camera_info = camera_info_message(grids.output, header=header, like=camera_info)
        if settings.publish_points:
            rgb = None
            if settings.points_rgb:
                shown = color if color.shape[:2] == grids.output.shape else resize_color(
                    color, grids)[:grids.output.height, :grids.output.width]
                if shown.ndim == 2:  # mono8: grey points, in the layout points_rgb promises
                    shown = np.repeat(shown[:, :, None], 3, axis=2)
                rgb = shown if order == 'rgb' else shown[:, :, ::-1]
            result.points = depth_to_pointcloud(upsampled, grids.output, header, rgb)
        encoding = output_encoding(settings.output_encoding, depth_msg.encoding)
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


MAX_LATENCY = 60.0  # s: a stamp-to-publish time beyond this says the clocks differ


class LatencyStats:
    """Counts, latencies and output coverage over a reporting period, with percentiles."""

    def __init__(self, window=1000):
        """Keep at most ``window`` latency samples per period."""
        self.latencies = collections.deque(maxlen=window)
        self.inputs = 0
        self.outputs = 0
        self.coverage = [0.0, 0.0]  # sums of FrameResult.coverage over the period
        self._lock = threading.Lock()  # outputs come from the inference thread

    def add_input(self):
        """Count one received pair."""
        with self._lock:
            self.inputs += 1

    def add_output(self, latency, coverage=(0.0, 0.0)):
        """
        Count one published result: stamp-to-publish seconds and its FrameResult.coverage.

        Return False, and keep no latency, when it cannot be one: under -1 s, or more than
        MAX_LATENCY (stamps of 0, a camera clock not synchronised with the node's). A device
        clock a little ahead (up to a second) gives small negative latencies, kept as they are.
        """
        plausible = -1.0 <= latency <= MAX_LATENCY
        with self._lock:
            self.outputs += 1
            if plausible:
                self.latencies.append(latency)
            self.coverage = [a + b for a, b in zip(self.coverage, coverage)]
        return plausible

    def take(self, period):
        """
        Return the last ``period`` seconds' numbers and reset them.

        A dict of 'pairs' and 'outputs' (counts), 'input_hz', 'output_hz', 'p50' and 'p95'
        (latency in seconds, NaN without output), 'valid_share' and 'expected_share' (means of
        FrameResult.coverage, NaN without output).
        """
        with self._lock:
            lat = np.array(self.latencies) if self.latencies else np.array([np.nan])
            inputs, outputs, coverage = self.inputs, self.outputs, self.coverage
            self.latencies.clear()
            self.inputs = self.outputs = 0
            self.coverage = [0.0, 0.0]
        mean = [c / outputs if outputs else float('nan') for c in coverage]
        return {'pairs': inputs, 'outputs': outputs, 'input_hz': inputs / period,
                'output_hz': outputs / period, 'p50': float(np.percentile(lat, 50)),
                'p95': float(np.percentile(lat, 95)), 'valid_share': mean[0],
                'expected_share': mean[1]}
