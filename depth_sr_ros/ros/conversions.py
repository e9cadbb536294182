"""
sensor_msgs Image / CameraInfo <-> numpy, with the depth conventions of depth_image_proc.

- ``16UC1`` (and ``mono16``) depth is millimetres with 0 = invalid; ``32FC1`` is metres with
  NaN = invalid. Internally depth is float32 metres with NaN = invalid.
- Colour: rgb8, bgr8, rgba8, bgra8, mono8. Row padding (step > width * pixel size) and
  big-endian data are handled; every malformed message raises ImageFormatError with a message
  that names the problem.

- CompressedImage (image_transport's 'compressed' jpeg/png and 'compressedDepth' png, as
  recorded bags hold them) is decoded into an Image (``decompress``).

This module works on message objects only: it creates no ROS node or publisher, so it is
tested without DDS. It needs no cv_bridge (not on PyPI) for these encodings, and hands other
colour encodings to cv_bridge where it is installed.
"""

import array
import struct

import cv2
from depth_sr_ros.geometry.camera import Camera, GeometryError, PLUMB_BOB, to_grid
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

try:  # a real ROS install has cv_bridge; pip does not
    import cv_bridge
except ImportError:
    cv_bridge = None

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    '16UC1': ('u2', 1), 'mono16': ('u2', 1), '32FC1': ('f4', 1),
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1),
    'yuv422': ('u1', 2), 'uyvy': ('u1', 2), 'yuv422_yuy2': ('u1', 2), 'yuyv': ('u1', 2),
}
# YUV 4:2:2 colour (usb_cam, v4l2_camera and many UVC drivers): sensor_msgs' 'yuv422' is UYVY,
# 'yuv422_yuy2' YUYV; 'uyvy' and 'yuyv' are their newer names.
YUV422 = {'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
          'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2, 'yuyv': cv2.COLOR_YUV2RGB_YUY2}
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8') + tuple(YUV422)
OUTPUT_DEPTH_ENCODINGS = ('16UC1', '32FC1')
MAX_MM = np.iinfo(np.uint16).max
# image_transport's compressedDepth puts a header before the PNG: the format (an int32 enum)
# and the two parameters of the quantised inverse depth of 32FC1 (float32).
COMPRESSED_DEPTH_HEADER = struct.Struct('<iff')


def message_type(kind):
    """Return a message class's ROS type name: sensor_msgs.msg.Image -> 'sensor_msgs/msg/Image'."""
    return f"{kind.__module__.split('.')[0]}/msg/{kind.__name__}"


def stamp_ns(stamp):
    """Return a builtin_interfaces/Time (a header's stamp) as integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class ImageFormatError(ValueError):
    """An Image or CameraInfo message that cannot be used, with the reason."""


def decompress(msg):
    """
    Return the sensor_msgs/Image of a sensor_msgs/CompressedImage, header kept.

    Its ``format`` is image_transport's: '<encoding>; jpeg compressed bgr8' (or png, or a bare
    'jpeg' of older recorders) decodes with OpenCV to bgr8, bgra8, mono8 or, for a 16-bit PNG,
    16UC1; '16UC1; compressedDepth png' (or no codec, as older releases wrote) to the
    millimetres it holds; '32FC1; compressedDepth png' to metres from its quantised inverse
    depth (depth = a / (q - b), q = 0: none). ImageFormatError for other formats
    (compressedDepth rvl) and bytes that do not decode.
    """
    form = msg.format or ''
    encoding, _, transport = (part.strip() for part in form.partition(';'))
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if 'compressedDepth' in transport:
        # Releases before RVL wrote no codec ('16UC1; compressedDepth'): png.
        if transport.split()[1:] not in ([], ['png']) or encoding not in DEPTH_ENCODINGS:
            raise ImageFormatError(f"compressedDepth format '{form}' is not supported (16UC1 or "
                                   '32FC1 in png)')
        pixels = None
        if data.size > COMPRESSED_DEPTH_HEADER.size:
            _, a, b = COMPRESSED_DEPTH_HEADER.unpack_from(data)
            pixels = cv2.imdecode(data[COMPRESSED_DEPTH_HEADER.size:], cv2.IMREAD_UNCHANGED)
        if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 2:
            raise ImageFormatError(f"compressedDepth image ('{form}') does not decode to 16-bit "
                                   'depth')
        if encoding == '32FC1':
            with np.errstate(divide='ignore', invalid='ignore'):
                pixels = np.where(pixels > 0, a / (pixels.astype(np.float32) - b),
                                  np.nan).astype(np.float32)
        else:
            encoding = '16UC1'
    else:
        pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if pixels is None or pixels.dtype not in (np.uint8, np.uint16) or (
                pixels.ndim == 3 and (pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8)):
            raise ImageFormatError(f"compressed image ('{form}') does not decode to an image")
        if pixels.ndim == 2:
            encoding = 'mono8' if pixels.dtype == np.uint8 else '16UC1'
        else:
            encoding = 'bgr8' if pixels.shape[2] == 3 else 'bgra8'
    pixels = np.ascontiguousarray(pixels)
    return Image(header=msg.header, height=pixels.shape[0], width=pixels.shape[1],
                 encoding=encoding, is_bigendian=0, step=pixels.strides[0],
                 data=pixels.tobytes())


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
    takes either order); YUV 4:2:2 is converted to rgb by OpenCV. Other encodings (bayer_*,
    nv12, ...) go through cv_bridge where it is installed (every ROS install); the pip route
    has no cv_bridge and refuses them.
    """
    if msg.encoding not in COLOR_ENCODINGS and cv_bridge is not None:
        try:
            return cv_bridge.CvBridge().imgmsg_to_cv2(msg, desired_encoding='rgb8'), 'rgb'
        # A short or malformed buffer fails in numpy (TypeError, ValueError) or OpenCV before
        # cv_bridge's own checks: bad input all the same, not a failure of the model.
        except (cv_bridge.CvBridgeError, TypeError, ValueError, cv2.error) as error:
            raise ImageFormatError(f"cv_bridge cannot convert '{msg.encoding}' "
                                   f'{msg.width}x{msg.height} to rgb8: {error}') from None
    pixels = image_to_array(msg, COLOR_ENCODINGS)
    if msg.encoding in YUV422:
        if msg.width % 2:  # two pixels share one U and one V
            raise ImageFormatError(f"'{msg.encoding}' image {msg.width}x{msg.height} has an odd "
                                   'width')
        return cv2.cvtColor(np.ascontiguousarray(pixels), YUV422[msg.encoding]), 'rgb'
    if msg.encoding == 'mono8':
        return pixels, 'rgb'
    return pixels[:, :, :3], ('bgr' if msg.encoding.startswith('bgr') else 'rgb')


def byte_field(values):
    """
    Return a numpy array's bytes as ``array.array('B')``, what a message's uint8[] field holds.

    The field takes such an array as it is. Given bytes, Humble's generated setter checks every
    byte in Python first (rosidl_python, under ``__debug__``; Jazzy and newer only with
    ROS_PYTHON_CHECK_FIELDS set): a Python loop over the bytes of every output frame.
    """
    return array.array('B', np.ascontiguousarray(values).tobytes())


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
    msg.data = byte_field(data)
    return msg


def _image_grid(info):
    """
    Return (width, height, map) of the images a CameraInfo describes under its ROI and binning.

    K, D, R and P are the full resolution's (CameraInfo.msg); ``map(matrix)`` takes a K or P
    to the image's pixels: cut to the ROI, then binned (geometry.camera.to_grid).
    """
    bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    roi = info.roi
    if roi.width and roi.height:
        ox, oy, width, height = roi.x_offset, roi.y_offset, roi.width, roi.height
    else:
        ox, oy, width, height = 0, 0, info.width, info.height
    return int(width) // bx, int(height) // by, lambda matrix: to_grid(
        matrix, 1.0 / bx, 1.0 / by, ox, oy)


def camera_from_info(info, image_shape=None):
    """
    Return the geometry.camera.Camera of a CameraInfo; raise ImageFormatError if it is unusable.

    A camera_info with binning or a region of interest gives the camera of the binned or cut
    images, as image_geometry takes it. A binned pixel's centre is the centre of the pixels it
    bins (geometry.camera.to_grid), where image_geometry divides the principal point by the
    binning: theirs sits 0.25 px right and below at binning 2, 0.375 px at 4.

    :param image_shape: (H, W) of the image it describes; a camera_info for another size is
        refused (it belongs to another stream or resolution).
    """
    width, height, to_image = _image_grid(info)
    if image_shape is not None and (height, width) != tuple(image_shape[:2]):
        full = '' if (width, height) == (info.width, info.height) else (
            f' (its {info.width}x{info.height} under binning and ROI)')
        raise ImageFormatError(f'camera_info is for {width}x{height}{full} but the image '
                               f'is {image_shape[1]}x{image_shape[0]}')
    try:
        k = to_image(np.asarray(info.k, np.float64).reshape(3, 3))
        return Camera(width, height, tuple(float(v) for v in k.ravel()),
                      tuple(float(v) for v in info.d), info.distortion_model or PLUMB_BOB)
    except (GeometryError, ValueError) as error:
        raise ImageFormatError(f'camera_info {str(error).replace("camera ", "", 1)}') from None


def camera_info_message(camera, frame_id='', header=None, like=None):
    """
    Return a CameraInfo for ``camera``: K, D and its model, R and P.

    :param header: a std_msgs/Header to use (its frame_id wins over ``frame_id``).
    :param like: the CameraInfo ``camera`` was made from (camera_from_info), perhaps at another
        size: its R and its P (taken to ``camera``'s grid as K was: ROI, binning, resizing)
        are kept, so that image_proc rectifies an image on ``camera``'s grid as it rectifies
        that camera's own. Without it, or where its P is all zero (not calibrated for
        rectification): R = identity, P = [K | 0].
    """
    info = CameraInfo()
    if header is not None:
        info.header = header
    else:
        info.header.frame_id = frame_id
    info.width, info.height = camera.width, camera.height
    info.distortion_model = camera.model
    info.d = [float(v) for v in camera.d]
    info.k = [float(v) for v in camera.k]
    k = camera.matrix
    r, p = np.eye(3), np.hstack([k, np.zeros((3, 1))])
    if like is not None and np.any(np.asarray(like.p, np.float64)):
        r = np.asarray(like.r, np.float64).reshape(3, 3)
        if not np.any(r):
            r = np.eye(3)
        width, height, to_image = _image_grid(like)
        p = to_grid(to_image(np.asarray(like.p, np.float64).reshape(3, 4)),
                    camera.width / width, camera.height / height)
    info.r = [float(v) for v in r.ravel()]
    info.p = [float(v) for v in p.ravel()]
    return info


def depth_to_pointcloud(depth, camera, header, rgb=None):
    """
    Build an organised PointCloud2 (x, y, z and optionally rgb) from metres and a camera.

    Each point lies on its pixel's undistorted ray (geometry.camera.Camera.undistorted_rays), so a
    distorted colour camera gives straight walls. Invalid depth gives NaN points (is_dense is
    False), as depth_image_proc does.

    :param depth: (H, W) float32 metres, NaN = invalid.
    :param camera: geometry.camera.Camera of the depth grid.
    :param header: header of the cloud (frame of the camera, z forward).
    :param rgb: optional (H, W, 3) uint8 RGB colour for each point.
    """
    h, w = depth.shape
    names = ['x', 'y', 'z'] + (['rgb'] if rgb is not None else [])
    cloud = np.empty((h, w), dtype=[(n, '<f4') for n in names])
    rays = camera.undistorted_rays()
    cloud['z'] = depth
    cloud['x'] = depth * rays[:, :, 0]
    cloud['y'] = depth * rays[:, :, 1]
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
    msg.data = byte_field(cloud)
    return msg


def camera_info_from_yaml(path):
    """
    Return the CameraInfo of a camera calibration file (camera_calibration's YAML format).

    What camera_calibration writes and camera_info_manager reads: image_width, image_height,
    camera_matrix, distortion_model, distortion_coefficients and, when present,
    rectification_matrix and projection_matrix. Raises ValueError naming the file and the
    problem.
    """
    import yaml  # only here: the node never reads calibration files
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"camera calibration '{path}': {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"camera calibration '{path}' is not a YAML mapping")

    def matrix(key, size, required=True):
        value = data.get(key)
        if value is None and not required:
            return None
        values = value.get('data') if isinstance(value, dict) else None
        try:
            if values is None or (size and len(values) != size):
                raise ValueError
            return [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"camera calibration '{path}': {key} needs 'data' with "
                             f'{size or "its"} numbers') from None
    try:
        msg = CameraInfo(width=int(data['image_width']), height=int(data['image_height']))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"camera calibration '{path}' needs image_width and image_height") \
            from None
    msg.k = matrix('camera_matrix', 9)
    msg.d = matrix('distortion_coefficients', 0, required=False) or []
    msg.distortion_model = str(data.get('distortion_model', PLUMB_BOB))
    msg.r = matrix('rectification_matrix', 9, required=False) or [1.0, 0, 0, 0, 1, 0, 0, 0, 1]
    msg.p = matrix('projection_matrix', 12, required=False) or [
        msg.k[0], msg.k[1], msg.k[2], 0.0, msg.k[3], msg.k[4], msg.k[5], 0.0, 0.0, 0.0, 1.0,
        0.0]
    return msg


def image_message(pixels, encoding, frame_id, stamp=None):
    """Return an rgb8 Image of RGB pixels, or a 16UC1 / 32FC1 one of metres."""
    if encoding == 'rgb8':
        msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding='rgb8',
                    is_bigendian=0, step=pixels.shape[1] * 3, data=byte_field(pixels))
        msg.header.frame_id = frame_id
    else:
        msg = metres_to_image(pixels, encoding, Image().header)
        msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg
