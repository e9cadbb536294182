"""
sensor_msgs Image / CameraInfo <-> numpy, with the depth conventions of depth_image_proc.

- ``16UC1`` (and ``mono16``) depth is millimetres with 0 = invalid; ``32FC1`` is metres with
  NaN = invalid. Internally depth is float32 metres with NaN = invalid.
- Colour: rgb8, bgr8, rgba8, bgra8, mono8. Row padding (step > width * pixel size) and
  big-endian data are handled; every malformed message raises ImageFormatError with a message
  that names the problem.

This module works on message objects only: it creates no ROS node or publisher, so it is
tested without DDS. It replaces cv_bridge, which is not on PyPI, for these encodings.
"""

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    '16UC1': ('u2', 1), 'mono16': ('u2', 1), '32FC1': ('f4', 1),
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1),
}
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
OUTPUT_DEPTH_ENCODINGS = ('16UC1', '32FC1')
MAX_MM = np.iinfo(np.uint16).max
FOV_TOLERANCE = 0.02  # share of the colour image the depth view may overhang


def stamp_ns(stamp):
    """Return a builtin_interfaces/Time (a header's stamp) as integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class ImageFormatError(ValueError):
    """An Image or CameraInfo message that cannot be used, with the reason."""


def image_to_array(msg, allowed=None):
    """
    Return the pixels of an Image as a numpy array (H, W) or (H, W, C), native byte order.

    The result is a view of the message buffer when no byte swap is needed.

    :param msg: sensor_msgs/Image.
    :param allowed: encodings accepted here (default: all of ENCODINGS).
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS or (allowed is not None and encoding not in allowed):
        accepted = ', '.join(allowed or ENCODINGS)
        raise ImageFormatError(f"unsupported encoding '{encoding}' (accepted: {accepted})")
    if msg.height == 0 or msg.width == 0:
        raise ImageFormatError(f'empty image {msg.width}x{msg.height}')
    base, channels = ENCODINGS[encoding]
    row_bytes = msg.width * channels * np.dtype(base).itemsize
    if msg.step < row_bytes:
        raise ImageFormatError(f'step {msg.step} is smaller than width x pixel size '
                               f'({msg.width} x {row_bytes // msg.width} = {row_bytes})')
    if len(msg.data) != msg.step * msg.height:
        raise ImageFormatError(f'data length {len(msg.data)} does not match height x step '
                               f'({msg.height} x {msg.step} = {msg.height * msg.step})')
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    dtype = np.dtype(base).newbyteorder('>' if msg.is_bigendian else '<')
    pixels = rows[:, :row_bytes].view(dtype)
    if not dtype.isnative:
        pixels = pixels.astype(dtype.newbyteorder('='))
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels


def depth_to_metres(msg, problems=None):
    """
    Return depth as float32 metres with NaN where invalid (0, NaN, inf or negative).

    :param problems: a list to which a sentence is appended when the message holds values
        that no depth encoding allows (negative 32FC1 depth); NaN, +-inf and 0 are the usual
        "no measurement" values (REP 118) and are not reported.
    """
    raw = image_to_array(msg, DEPTH_ENCODINGS)
    if raw.dtype == np.uint16:
        depth = raw.astype(np.float32) * np.float32(0.001)
    else:
        depth = raw.astype(np.float32)
    with np.errstate(invalid='ignore'):
        negative = np.isfinite(depth) & (depth < 0)  # -inf is 'too close' (REP 118)
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    if problems is not None and negative.any():
        problems.append(f'{msg.encoding} depth has negative values; they are treated as invalid')
    return depth


def color_to_array(msg):
    """
    Return (pixels, order): (H, W, 3) uint8 in 'rgb' or 'bgr' order, or (H, W) for mono8.

    Alpha is dropped and channels are not reordered, so no pixel is copied (the predictor
    takes either order).
    """
    pixels = image_to_array(msg, COLOR_ENCODINGS)
    if msg.encoding == 'mono8':
        return pixels, 'rgb'
    return pixels[:, :, :3], ('bgr' if msg.encoding.startswith('bgr') else 'rgb')


def metres_to_image(depth, encoding, header):
    """
    Build a depth Image from float32 metres (NaN = invalid) in '16UC1' or '32FC1'.

    16UC1 rounds to millimetres; invalid pixels and depth beyond 65.535 m become 0.
    """
    if encoding not in OUTPUT_DEPTH_ENCODINGS:
        raise ImageFormatError(f'output encoding must be one of {OUTPUT_DEPTH_ENCODINGS}, '
                               f"got '{encoding}'")
    if encoding == '16UC1':
        with np.errstate(invalid='ignore'):
            mm = np.rint(depth * 1000.0)
            mm[~np.isfinite(mm) | (mm <= 0) | (mm > MAX_MM)] = 0
        data = mm.astype('<u2')
    else:
        data = np.asarray(depth, dtype='<f4')
    msg = Image()
    msg.header = header
    msg.height, msg.width = data.shape
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = data.shape[1] * data.itemsize
    msg.data = data.tobytes()
    return msg


def check_camera_info(info, image_shape):
    """Raise ImageFormatError unless ``info`` has a usable K for an image of ``image_shape``."""
    k = np.asarray(info.k, dtype=np.float64)
    if k.shape != (9,) or not np.isfinite(k).all():
        raise ImageFormatError('camera_info K is not 9 finite numbers')
    fx, fy = k[0], k[4]
    if fx <= 0 or fy <= 0:
        raise ImageFormatError(f'camera_info K has non-positive focal length ({fx}, {fy})')
    if (info.height, info.width) != tuple(image_shape[:2]):
        raise ImageFormatError(f'camera_info is for {info.width}x{info.height} but the image '
                               f'is {image_shape[1]}x{image_shape[0]}')


def scale_camera_info(info, width, height):
    """
    Return a copy of ``info`` for the same camera resampled to width x height.

    K and P are scaled with the pixel-centre convention (a pixel's centre keeps its
    position in the image); distortion, R and the frame stay as they are.
    """
    sx = width / info.width
    sy = height / info.height
    out = CameraInfo()
    out.header = info.header
    out.width, out.height = int(width), int(height)
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = np.asarray(info.r, dtype=np.float64).copy()
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3).copy()
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    for m in (k, p):
        m[0, 0] *= sx
        m[0, 1] *= sx
        m[0, 2] = (m[0, 2] + 0.5) * sx - 0.5
        m[1, 1] *= sy
        m[1, 2] = (m[1, 2] + 0.5) * sy - 0.5
    p[0, 3] *= sx  # Tx = -fx' * baseline scales with fx
    out.k = k.ravel()
    out.p = p.ravel()
    return out


def _intrinsics(info):
    k = np.asarray(info.k, dtype=np.float64)
    return k[0], k[4], k[2], k[5]


def resample_color_to_depth(color, color_info, depth_info, scale):
    """
    Resample the colour image onto the grid of the depth camera upsampled by ``scale``.

    The depth is registered to the colour camera (same viewpoint), so a target pixel maps to
    a colour pixel through the two sets of intrinsics: x_c = fx_c / fx_t * (x_t - cx_t) + cx_t.
    This handles colour images that are not exactly scale x the depth size (a different
    resolution or crop of the same camera).

    :return: (image, camera_info): the colour on the target grid, and the target's intrinsics
        (depth_info scaled by ``scale``), which are also those of the super-resolved depth.
    """
    check_camera_info(color_info, color.shape)
    target = scale_camera_info(depth_info, depth_info.width * scale, depth_info.height * scale)
    fx_c, fy_c, cx_c, cy_c = _intrinsics(color_info)
    fx_t, fy_t, cx_t, cy_t = _intrinsics(target)
    affine = np.array([[fx_c / fx_t, 0, cx_c - fx_c / fx_t * cx_t],
                       [0, fy_c / fy_t, cy_c - fy_c / fy_t * cy_t]], dtype=np.float64)
    # Where the target's outer pixel edges fall in the colour image: beyond its border by more
    # than FOV_TOLERANCE of its size, the colour cannot guide that part of the depth.
    for axis, (size_t, size_c) in enumerate(((target.width, color_info.width),
                                             (target.height, color_info.height))):
        edges = affine[axis, axis] * np.array([-0.5, size_t - 0.5]) + affine[axis, 2]
        margin = FOV_TOLERANCE * size_c
        if edges[0] < -0.5 - margin or edges[1] > size_c - 0.5 + margin:
            raise ImageFormatError(
                f"the depth camera's view reaches beyond the colour image along "
                f"{'xy'[axis]} (colour pixels {edges[0]:.0f} to {edges[1]:.0f} of {size_c}): "
                'is the depth registered to this colour camera?')
    image = cv2.warpAffine(np.ascontiguousarray(color), affine, (target.width, target.height),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return image, target


def depth_to_pointcloud(depth, info, header, rgb=None):
    """
    Build an organised PointCloud2 (x, y, z and optionally rgb) from metres and intrinsics.

    Invalid depth gives NaN points (is_dense is False), as depth_image_proc does.

    :param depth: (H, W) float32 metres, NaN = invalid.
    :param info: CameraInfo of the depth grid (its K is used).
    :param header: header of the cloud (frame of the camera, z forward).
    :param rgb: optional (H, W, 3) uint8 RGB colour for each point.
    """
    h, w = depth.shape
    fx, fy, cx, cy = _intrinsics(info)
    names = ['x', 'y', 'z'] + (['rgb'] if rgb is not None else [])
    cloud = np.empty((h, w), dtype=[(n, '<f4') for n in names])
    u = (np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(fx)
    v = (np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(fy)
    cloud['z'] = depth
    cloud['x'] = depth * u[None, :]
    cloud['y'] = depth * v[:, None]
    if rgb is not None:
        packed = ((rgb[:, :, 0].astype(np.uint32) << 16) | (rgb[:, :, 1].astype(np.uint32) << 8)
                  | rgb[:, :, 2].astype(np.uint32))
        cloud['rgb'] = packed.view(np.float32)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = h, w
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate(names)]
    msg.is_bigendian = False
    msg.point_step = 4 * len(names)
    msg.row_step = msg.point_step * w
    msg.is_dense = False
    msg.data = cloud.tobytes()
    return msg
