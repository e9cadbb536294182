"""Image / CameraInfo <-> numpy conversions, built on real sensor_msgs messages."""

import array

import cv2
from depth_sr_ros.geometry.camera import Camera, pinhole_camera
from depth_sr_ros.ros.conversions import (
    camera_from_info, camera_info_message, color_to_array, COMPRESSED_DEPTH_HEADER, decompress,
    depth_to_metres, depth_to_pointcloud, image_to_array, ImageFormatError, metres_to_image)
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def make_image(array, encoding, pad=0, bigendian=False):
    array = np.ascontiguousarray(array)
    data = array.astype(array.dtype.newbyteorder('>' if bigendian else '<'))
    rows = data.reshape(array.shape[0], -1).view(np.uint8)
    rows = np.pad(rows, ((0, 0), (0, pad)))
    return Image(height=array.shape[0], width=array.shape[1], encoding=encoding,
                 is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes())


def test_16uc1_millimetres_become_metres_with_nan_for_zero():
    mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    depth = depth_to_metres(make_image(mm, '16UC1'))
    np.testing.assert_allclose(depth, [[np.nan, 1.0], [1.5, 65.535]], rtol=1e-6)


def test_32fc1_invalid_values_become_nan():
    metres = np.array([[np.nan, 1.25], [np.inf, -1.0]], np.float32)
    depth = depth_to_metres(make_image(metres, '32FC1'))
    np.testing.assert_array_equal(np.isnan(depth), [[True, False], [True, True]])
    assert depth[0, 1] == np.float32(1.25)
    # NaN and +-inf are the usual 'no measurement' values (REP 118); negative depth is not.
    problems = []
    depth_to_metres(make_image(np.array([[np.nan, -np.inf, np.inf, 1.0]], np.float32),
                               '32FC1'), problems)
    assert problems == []
    depth_to_metres(make_image(metres, '32FC1'), problems)
    assert problems == ['32FC1 depth has negative values; they are treated as invalid']


@pytest.mark.parametrize('bigendian', [False, True])
def test_row_padding_and_byte_order_are_handled(bigendian):
    mm = np.arange(12, dtype=np.uint16).reshape(3, 4) * 100 + 100
    msg = make_image(mm, '16UC1', pad=6, bigendian=bigendian)
    assert msg.step == 4 * 2 + 6
    np.testing.assert_array_equal(image_to_array(msg), mm)


def test_colour_orders_and_alpha_without_copies():
    rgba = np.random.default_rng(0).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    pixels, order = color_to_array(make_image(rgba, 'bgra8', pad=4))
    assert order == 'bgr' and pixels.shape == (3, 5, 3)
    np.testing.assert_array_equal(pixels, rgba[:, :, :3])
    assert not pixels.flags.owndata  # a view of the message buffer
    grey, _ = color_to_array(make_image(rgba[:, :, 0], 'mono8'))
    assert grey.shape == (3, 5)


@pytest.mark.parametrize('change,message', [
    ({'encoding': 'nv12'}, "unsupported encoding 'nv12'"),
    ({'height': 0}, 'empty image'),
    ({'step': 3}, 'step 3 is smaller than width x pixel size'),
    ({'height': 5}, 'data length 16 does not match height x step'),
])
def test_malformed_images_name_the_problem(change, message):
    msg = make_image(np.ones((2, 4), np.uint16), '16UC1')
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageFormatError, match=message):
        depth_to_metres(msg)


def test_colour_encodings_are_refused_as_depth():
    msg = make_image(np.ones((2, 2, 3), np.uint8), 'rgb8')
    with pytest.raises(ImageFormatError, match="unsupported encoding 'rgb8'"):
        depth_to_metres(msg)


def test_metres_to_16uc1_and_32fc1():
    depth = np.array([[np.nan, 1.2344], [70.0, 0.5]], np.float32)
    mm = image_to_array(metres_to_image(depth, '16UC1', Image().header))
    np.testing.assert_array_equal(mm, [[0, 1234], [0, 500]])  # beyond 65.535 m: invalid
    metres = image_to_array(metres_to_image(depth, '32FC1', Image().header))
    np.testing.assert_array_equal(metres, depth)
    with pytest.raises(ImageFormatError, match='output encoding'):
        metres_to_image(depth, 'mono8', Image().header)


@pytest.mark.parametrize('k,message', [
    ([0.0] * 9, 'non-positive focal length'),
    ([np.nan] + [1.0] * 8, 'not 9 finite numbers'),
])
def test_garbage_camera_info_is_refused(k, message):
    info = CameraInfo(width=4, height=4)
    info.k = k
    with pytest.raises(ImageFormatError, match=message):
        camera_from_info(info, (4, 4))
    with pytest.raises(ImageFormatError, match='camera_info is for 4x4 but the image is 5x4'):
        camera_from_info(info, (4, 5))


def test_pointcloud_back_projects_through_the_intrinsics():
    camera = pinhole_camera(4, 2, 2.0)  # cx = 1.5, cy = 0.5
    depth = np.array([[2.0, np.nan, 2.0, 2.0], [2.0, 2.0, 2.0, 4.0]], np.float32)
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[1, 3] = (255, 0, 10)
    cloud = depth_to_pointcloud(depth, camera, Image().header, rgb)
    assert (cloud.height, cloud.width, cloud.point_step) == (2, 4, 16)
    assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb']
    points = np.frombuffer(bytes(cloud.data), dtype='<f4').reshape(2, 4, 4)
    np.testing.assert_allclose(points[1, 3, :3], [4 * 1.5 / 2, 4 * 0.5 / 2, 4.0])
    assert np.isnan(points[0, 1, :3]).all() and not cloud.is_dense
    assert points[1, 3, 3:].view(np.uint32)[0] == (255 << 16) | 10


def test_camera_info_round_trip_keeps_k_d_and_the_model():
    camera = Camera(64, 48, (50.0, 0.0, 31.5, 0.0, 51.0, 23.5, 0.0, 0.0, 1.0),
                    (0.1, -0.02, 0.001, 0.0, 0.0, 0.3, 0.0, 0.0), 'rational_polynomial')
    info = camera_info_message(camera, 'cam')
    assert camera_from_info(info, (48, 64)) == camera
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], camera.matrix)
    info.distortion_model = 'kannala'
    with pytest.raises(ImageFormatError, match="distortion model 'kannala' is not supported"):
        camera_from_info(info)


def test_stamp_in_nanoseconds():
    from depth_sr_ros.ros.conversions import stamp_ns
    header = Image().header
    header.stamp.sec, header.stamp.nanosec = 3, 5
    assert stamp_ns(header.stamp) == 3_000_000_005


class CvBridgeStandIn:
    """What conversions uses of cv_bridge (not on PyPI): CvBridge.imgmsg_to_cv2, CvBridgeError."""

    class CvBridgeError(TypeError):
        """cv_bridge's error type."""

    class CvBridge:

        def imgmsg_to_cv2(self, msg, desired_encoding='passthrough'):
            if msg.encoding != 'bayer_rggb8' or desired_encoding != 'rgb8':
                raise CvBridgeStandIn.CvBridgeError(f'{msg.encoding} is not supported')
            import cv2
            raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
            return cv2.cvtColor(raw, cv2.COLOR_BayerRG2RGB)


def test_other_colour_encodings_go_through_cv_bridge_where_it_is_installed(monkeypatch):
    from depth_sr_ros.ros import conversions
    raw = np.full((2, 4), 128, np.uint8)
    msg = Image(height=2, width=4, encoding='bayer_rggb8', step=4, data=raw.tobytes())
    monkeypatch.setattr(conversions, 'cv_bridge', None)  # the pip route, also on a ROS install
    with pytest.raises(ImageFormatError, match="unsupported encoding 'bayer_rggb8'"):
        color_to_array(msg)
    monkeypatch.setattr(conversions, 'cv_bridge', CvBridgeStandIn)
    pixels, order = color_to_array(msg)
    assert pixels.shape == (2, 4, 3) and order == 'rgb'
    msg.encoding = 'bayer_gbrg8'
    with pytest.raises(ImageFormatError, match="cv_bridge cannot convert 'bayer_gbrg8'"):
        color_to_array(msg)
    # A buffer shorter than its size fails inside numpy, before cv_bridge's own checks: still
    # bad input, not a failed inference.
    short = Image(height=2, width=4, encoding='bayer_rggb8', step=4, data=raw.tobytes()[:-3])
    with pytest.raises(ImageFormatError, match="cv_bridge cannot convert 'bayer_rggb8' 4x2"):
        color_to_array(short)


@pytest.mark.parametrize('bridge', [None, CvBridgeStandIn])
def test_yuv422_colour_is_converted_without_cv_bridge(monkeypatch, bridge):
    # usb_cam and v4l2_camera publish YUV 4:2:2; the pip route has no cv_bridge for it.
    from depth_sr_ros.ros import conversions
    monkeypatch.setattr(conversions, 'cv_bridge', bridge)
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, (3, 6), dtype=np.uint8)
    u, v = (rng.integers(112, 145, (3, 3), dtype=np.uint8) for _ in range(2))  # no clipping
    u[0, 0], v[0, 0], y[0, :2] = 90, 240, 81  # BT.601 red
    uyvy = np.stack([np.repeat(u, 2, axis=1), y], axis=2)  # U Y0 V Y1: chroma, then luma
    uyvy[:, 1::2, 0] = v
    yuyv = uyvy[:, :, ::-1].copy()  # Y0 U Y1 V
    results = []
    for encoding, pixels in [('yuv422', uyvy), ('uyvy', uyvy), ('yuv422_yuy2', yuyv),
                             ('yuyv', yuyv)]:
        msg = Image(height=3, width=6, encoding=encoding, step=12, data=pixels.tobytes())
        rgb, order = color_to_array(msg)
        assert rgb.shape == (3, 6, 3) and order == 'rgb'
        results.append(rgb)
    for rgb in results[1:]:
        np.testing.assert_array_equal(rgb, results[0])
    # BT.601, video range: the luma of the rgb result is the Y sent; U and V in their places.
    luma = results[0].astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    assert np.abs(luma - (y.astype(np.float32) - 16) * 255 / 219)[:, 2:].max() < 2
    assert (results[0][0, :2] >= [250, 0, 0]).all() and (results[0][0, :2, 1:] <= 3).all()
    odd = Image(height=3, width=5, encoding='yuyv', step=10, data=bytes(30))
    with pytest.raises(ImageFormatError, match='odd width'):
        color_to_array(odd)


def _compressed(form, data, frame='cam'):
    msg = CompressedImage(format=form, data=bytes(data))
    msg.header.frame_id = frame
    return msg


def test_compressed_images_of_image_transport_decode_to_the_images_they_were():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    out = decompress(_compressed('rgb8; png compressed bgr8', cv2.imencode('.png', bgr)[1]))
    assert out.encoding == 'bgr8' and out.header.frame_id == 'cam'
    np.testing.assert_array_equal(image_to_array(out), bgr)
    smooth = np.tile(np.arange(0, 240, 30, dtype=np.uint8), (6, 1))[..., None].repeat(3, 2)
    out = decompress(_compressed('jpeg', cv2.imencode('.jpg', smooth)[1]))  # older recorders
    assert out.encoding == 'bgr8' and np.abs(image_to_array(out) - smooth.astype(int)).max() < 8
    mm = rng.integers(1, 5000, (6, 8), dtype=np.uint16)
    header = COMPRESSED_DEPTH_HEADER.pack(0, 0.0, 0.0)
    for form in ('16UC1; compressedDepth png', '16UC1; compressedDepth'):  # older: no codec
        out = decompress(_compressed(form, header + cv2.imencode('.png', mm)[1].tobytes()))
        assert out.encoding == '16UC1'
        np.testing.assert_array_equal(image_to_array(out), mm)
    # 32FC1: inverse depth quantised as compressed_depth_image_transport does (quantisation
    # 100, depth_max 10 m): q = a / depth + b, 0 = no depth.
    metres = np.array([[0.5, 2.0, 7.25, np.nan]], np.float32)
    a, b = 100.0 * 101.0, 1.0 - 100.0 * 101.0 / 10.0
    q = np.where(np.isfinite(metres), np.rint(a / metres + b), 0).astype(np.uint16)
    out = decompress(_compressed('32FC1; compressedDepth png', COMPRESSED_DEPTH_HEADER.pack(
        0, a, b) + cv2.imencode('.png', q)[1].tobytes()))
    decoded = depth_to_metres(out)
    np.testing.assert_allclose(decoded[0, :3], metres[0, :3], rtol=2e-3)
    assert np.isnan(decoded[0, 3])
    for form, data, problem in (
            ('16UC1; compressedDepth rvl', header + b'\x00' * 20, 'is not supported'),
            ('16UC1; compressedDepth png', header + b'no png', 'does not decode'),
            ('bgr8; jpeg compressed bgr8', b'', 'does not decode')):
        with pytest.raises(ImageFormatError, match=problem):
            decompress(_compressed(form, data))


def test_a_camera_info_with_binning_or_a_region_of_interest_describes_the_smaller_image():
    # K and P are the full resolution's (CameraInfo.msg): binned 2x2 the 640x480 camera makes
    # 320x240 images, cut to a region of interest the region's size; centres keep their place.
    full = camera_info_message(Camera(640, 480, (500.0, 0.0, 319.5, 0.0, 502.0, 239.5, 0.0, 0.0,
                                                 1.0), (0.1, -0.2, 0.0, 0.0, 0.0)), 'cam')
    full.p[3] = -25.0  # a right camera's Tx
    full.binning_x = full.binning_y = 2
    binned = camera_from_info(full, (240, 320))
    np.testing.assert_allclose(binned.matrix, [[250.0, 0.0, 159.5], [0.0, 251.0, 119.5],
                                               [0.0, 0.0, 1.0]])
    assert binned.d == tuple(full.d)  # distortion acts on normalised coordinates
    out = np.reshape(camera_info_message(binned, 'cam', like=full).p, (3, 4))
    np.testing.assert_allclose(out[:2], [[250.0, 0.0, 159.5, -12.5], [0.0, 251.0, 119.5, 0.0]])
    message = r'camera_info is for 320x240 \(its 640x480 under binning and ROI\)'
    with pytest.raises(ImageFormatError, match=message + ' but the image is 640x480'):
        camera_from_info(full, (480, 640))
    full.binning_x = full.binning_y = 0
    full.roi.x_offset, full.roi.y_offset, full.roi.width, full.roi.height = 100, 50, 200, 100
    cut = camera_from_info(full, (100, 200))
    np.testing.assert_allclose(cut.matrix[:2, 2], [219.5, 189.5])


def test_outputs_hand_their_bytes_to_the_message_as_an_array(monkeypatch):
    # Humble's generated setter checks every byte in Python when given bytes (a quarter of a
    # second per 720p frame, on the inference thread); an array.array('B') is taken as it is.
    from depth_sr_ros.ros import conversions
    given = []

    def spy(message_class):
        class Spy(message_class):
            __slots__ = ()

            @property
            def data(self):
                return message_class.data.fget(self)

            @data.setter
            def data(self, value):
                given.append(type(value))
                message_class.data.fset(self, value)
        return Spy

    monkeypatch.setattr(conversions, 'Image', spy(Image))
    monkeypatch.setattr(conversions, 'PointCloud2', spy(conversions.PointCloud2))
    depth = np.full((2, 4), 1.5, np.float32)
    for encoding in ('16UC1', '32FC1'):
        assert image_to_array(metres_to_image(depth, encoding, Image().header)).shape == (2, 4)
    rgb = np.zeros((2, 4, 3), np.uint8)
    assert bytes(conversions.image_message(rgb, 'rgb8', 'f').data) == rgb.tobytes()
    depth_to_pointcloud(depth, pinhole_camera(4, 2, 2.0), Image().header, rgb)
    assert given and all(kind is array.array for kind in given), given
