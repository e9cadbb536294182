"""Camera geometry and the registration of real rigs' depth into the colour camera's LR grid."""

import dataclasses
import math

import cv2
from depth_sr_ros.data.scene import (
    color_pose, depth_pose, make_scene, render_depth, render_rig, RIGS)
from depth_sr_ros.geometry.camera import (
    Camera, EQUIDISTANT, GeometryError, pinhole_camera, PLUMB_BOB, RATIONAL)
from depth_sr_ros.geometry.grids import plan_grids
from depth_sr_ros.geometry.registration import reduce_registered, register_raw
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.ros.pipeline import plan_route
import numpy as np
import pytest

# The scale each rig is registered at: the ToF camera has too few pixels for 4x (see the
# scale advice), so it is tested at 8x as its README row says.
RIG_SCALES = {'aligned': 4, 'd435': 4, 'azure_nfov': 4, 'tof': 8}


@pytest.fixture(scope='module')
def scene():
    return make_scene()


def _register(rig, frame, grids):
    if rig.registered:
        return reduce_registered(frame['depth'], rig.depth, grids.lr)
    return register_raw(frame['depth'], rig.depth, rig.depth_to_color, grids.lr)


@pytest.mark.parametrize('name', sorted(RIG_SCALES))
def test_registered_depth_matches_the_depth_rendered_in_the_colour_frame(scene, name):
    rig = RIGS[name]
    frame = render_rig(scene, rig, index=1, frames=8)
    grids = plan_grids(rig.color, RIG_SCALES[name])
    low = _register(rig, frame, grids)
    truth = reduce_registered(frame['truth'], rig.color, grids.lr)
    both = np.isfinite(low) & np.isfinite(truth)
    assert both.mean() > 0.6
    assert np.median(np.abs(low[both] - truth[both])) < 1e-3  # metres
    # Holes only where the colour camera sees what the depth camera cannot.
    missing = np.isfinite(truth) & ~np.isfinite(low)
    seen = _seen_by_the_depth_camera(rig, frame, grids.lr, truth)
    assert (missing & seen).sum() <= 0.002 * np.isfinite(truth).sum(), 'visible holes'


def _seen_by_the_depth_camera(rig, frame, lr, truth):
    """
    Return the LR pixels whose true surface point the depth camera sees.

    Each pixel's point (its truth along its ray) is moved into the depth camera and projected:
    seen when it lands inside the depth image and one of the four depth pixels around it
    holds that point's depth (within 2 %), so not behind a nearer surface.
    """
    valid = np.isfinite(truth)
    if rig.registered:
        return valid
    rays = lr.undistorted_rays()[valid]
    z = truth[valid]
    points = rig.depth_to_color.inverse().apply(np.column_stack([rays[:, 0] * z,
                                                                 rays[:, 1] * z, z]))
    u, v = rig.depth.project(points).T
    height, width = rig.depth.shape
    with np.errstate(invalid='ignore'):
        inside = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    column = np.minimum(np.where(inside, u, 0).astype(int), width - 2)
    row = np.minimum(np.where(inside, v, 0).astype(int), height - 2)
    sensed = np.zeros(len(z), bool)
    for dr in (0, 1):
        for dc in (0, 1):
            with np.errstate(invalid='ignore'):
                sensed |= (np.abs(frame['depth'][row + dr, column + dc] - points[:, 2])
                           < 0.02 * points[:, 2])
    seen = np.zeros(truth.shape, bool)
    seen[valid] = inside & sensed
    return seen


@pytest.mark.parametrize('scale', [2, 4, 8])
@pytest.mark.parametrize('name', sorted(RIG_SCALES))
def test_registration_covers_what_the_depth_camera_sees_at_every_scale(scene, name, scale):
    # The ToF camera is coarser than the 2x and 4x LR grids (0.2 and 0.7 samples per LR
    # pixel): one sample per LR pixel at most left a grid of empty pixels (16 % and 62 % of
    # the grid valid, against 72 % seen). The mesh fills the grid between samples.
    rig = RIGS[name]
    frame = render_rig(scene, rig, index=2, frames=8)
    grids = plan_grids(rig.color, scale)
    low = _register(rig, frame, grids)
    truth = reduce_registered(frame['truth'], rig.color, grids.lr)
    seen = _seen_by_the_depth_camera(rig, frame, grids.lr, truth)
    covered = np.isfinite(low)[seen].mean()
    assert covered >= 0.95, f'{name} {scale}x: {covered:.3f} of what the depth camera sees'


def _planes(camera, split_column=None):
    """Depth of a wall at 2 m with a plate at 1 m over the image's left part, on ``camera``."""
    depth = np.full(camera.shape, 2.0, np.float32)
    depth[camera.height // 4:3 * camera.height // 4,
          :split_column or camera.width // 2] = 1.0
    return depth


def test_no_registered_pixel_takes_a_depth_between_two_surfaces():
    # A plate at 1 m before a wall at 2 m, seen by a depth camera coarser than the LR grid,
    # raw (3 cm to the side) and registered (same frame, a non-integer ratio): every pixel
    # is one of the two surfaces, and the grid between samples is filled.
    lr = pinhole_camera(160, 120, 150.0)
    raw_camera = pinhole_camera(76, 58, 70.0)
    raw = register_raw(_planes(raw_camera), raw_camera, Transform(translation=(0.03, 0, 0)),
                       lr)
    registered_camera = lr.resized(61, 47)
    registered = reduce_registered(_planes(registered_camera, 29), registered_camera, lr)
    for low in (raw, registered):
        values = low[np.isfinite(low)]
        assert np.isfinite(low).mean() > 0.95
        between = (values > 1.0 + 1e-4) & (values < 2.0 - 1e-4)
        assert not between.any(), f'{between.sum()} pixels between the surfaces'


def _plate_before_wall(camera, x_of_camera):
    """Depth on ``camera`` (at x_of_camera in the colour frame) of a 40x30 cm plate at 1 m."""
    rays = camera.undistorted_rays()
    x, y = x_of_camera + rays[..., 0], rays[..., 1]
    plate = (np.abs(x) <= 0.2) & (np.abs(y) <= 0.15)
    return np.where(plate, 1.0, 3.0).astype(np.float32)


@pytest.mark.parametrize('samples', [(160, 120), (80, 60), (56, 42)])
def test_a_sparse_depth_camera_never_shows_the_background_through_a_near_surface(samples):
    # A depth camera 5 cm to the side sees wall beside the plate that the colour camera does
    # not. With one, a quarter or an eighth of a sample per LR pixel the plate's samples miss
    # LR pixels that such wall samples reach: the plate must still win there, except within
    # about a sample's spacing of its border, where the edge falls between two samples.
    lr = pinhole_camera(160, 120, 150.0)
    width, height = samples
    camera = pinhole_camera(width, height, 150.0 * width / 160)
    low = register_raw(_plate_before_wall(camera, -0.05), camera,
                       Transform(translation=(-0.05, 0, 0)), lr)
    plate = _plate_before_wall(lr, 0.0) == 1.0
    spacing = 160 / width
    inside = cv2.erode(plate.astype(np.uint8), np.ones((3, 3), np.uint8),
                       iterations=math.ceil(spacing)) > 0
    assert not (low[inside] > 2.0).any(), f'{(low[inside] > 2.0).sum()} plate pixels show wall'
    assert np.isfinite(low[inside]).all()


def test_the_near_surface_wins_on_pixels_that_are_not_square():
    # The LR grid of an output_size of another aspect (fx 75, fy 150) under an 80x60 depth
    # camera 5 cm above the colour camera: samples are two LR pixels apart down the columns.
    lr = pinhole_camera(160, 120, 150.0).resized(80, 120)
    camera = pinhole_camera(80, 60, 75.0)
    rays = camera.undistorted_rays()
    x, y = rays[..., 0], rays[..., 1] - 0.05
    depth = np.where((np.abs(x) <= 0.2) & (np.abs(y) <= 0.15), 1.0, 3.0).astype(np.float32)
    low = register_raw(depth, camera, Transform(translation=(0, -0.05, 0)), lr)
    plate = _plate_before_wall(lr, 0.0) == 1.0
    inside = cv2.erode(plate.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2) > 0
    assert not (low[inside] > 2.0).any(), f'{(low[inside] > 2.0).sum()} plate pixels show wall'


def test_raw_registration_takes_inf_as_no_return_and_refuses_a_single_row():
    camera, lr = pinhole_camera(32, 24, 30.0), pinhole_camera(16, 12, 15.0)
    depth = np.full((24, 32), 2.0, np.float32)
    depth[:, :3] = np.inf  # "too far" (REP 117) in a 32FC1 image
    low = register_raw(depth, camera, Transform(translation=(0.02, 0, 0)), lr)
    assert np.nanmax(low) < 2.1 and np.isfinite(low).mean() > 0.8
    row = pinhole_camera(32, 1, 30.0)
    with pytest.raises(GeometryError, match='at least 2 rows'):
        register_raw(np.full((1, 32), 2.0, np.float32), row, Transform(), lr)


def _plane_depth(camera, to_color=None):
    """Depth on ``camera`` of the plane z = 1.5 + 0.4 x + 0.2 y of the colour frame."""
    normal, offset = np.array([-0.4, -0.2, 1.0]), 1.5
    if to_color is not None:  # the plane in the depth camera's frame
        r = np.asarray(to_color.rotation).reshape(3, 3)
        offset, normal = offset - normal @ np.asarray(to_color.translation), r.T @ normal
    rays = camera.undistorted_rays().reshape(-1, 2)
    z = offset / (np.column_stack([rays, np.ones(len(rays))]) @ normal)
    return z.reshape(camera.shape).astype(np.float32)


@pytest.mark.parametrize('route', ['registered', 'raw'])
def test_a_coarse_depth_camera_at_a_non_integer_ratio_fills_the_grid_on_both_routes(route):
    # 192x144 depth under a 512x384 colour camera at 2x: 256x192 LR pixels, 0.56 samples per
    # LR pixel, as a phone's ToF camera registered to its colour image.
    color = pinhole_camera(512, 384, 420.0)
    lr = plan_grids(color, 2).lr
    if route == 'registered':
        depth_camera, to_color = color.resized(192, 144), None
        low = reduce_registered(_plane_depth(depth_camera), depth_camera, lr)
    else:
        depth_camera = pinhole_camera(192, 144, 140.0)  # a little wider than the colour
        to_color = Transform(translation=(0.025, 0.004, 0.0))
        low = register_raw(_plane_depth(depth_camera, to_color), depth_camera, to_color, lr)
    truth = _plane_depth(lr)
    valid = np.isfinite(low)
    assert valid.mean() > 0.98
    error = np.abs(low[valid] - truth[valid])
    assert np.percentile(error, 99) < 1e-3  # metres: linear in a plane, so exact but rounding


def test_a_near_object_in_front_of_a_far_one_keeps_the_near_depth():
    # A depth camera 5 cm to the side sees a near plate (1 m) in front of a wall (3 m); in the
    # colour camera, wall samples land behind the plate too: the plate must win.
    depth_cam = pinhole_camera(160, 120, 140.0)
    color = pinhole_camera(160, 120, 140.0)
    depth = np.full((120, 160), 3.0, np.float32)
    depth[40:80, 60:100] = 1.0
    to_color = Transform(translation=(0.05, 0.0, 0.0))
    grids = plan_grids(color, 2)
    low = register_raw(depth, depth_cam, to_color, grids.lr)
    # The plate spans columns 60-99 in the depth camera; in the colour camera it shifts right
    # by f * 0.05 / 1 = 7 pixels, 3.5 LR pixels; its interior keeps 1 m.
    plate = low[22:38, 36:48]
    np.testing.assert_allclose(plate, 1.0, atol=1e-3)
    assert np.nanmin(low[:, :25]) > 2.9  # the wall elsewhere


def test_the_registered_route_never_mixes_foreground_and_background():
    camera = pinhole_camera(64, 48, 60.0)
    depth = np.full((48, 64), 3.0, np.float32)
    depth[:, 30:] = 1.0  # a depth edge that is not on a block boundary
    depth[8:12, 8:12] = np.nan  # LR pixel (2, 2): all invalid
    depth[12:15, 12:15] = np.nan  # LR pixel (3, 3): 9 of 16 invalid
    depth[20, 20] = np.nan  # LR pixel (5, 5): 1 of 16 invalid, still valid
    low = reduce_registered(depth, camera, camera.resized(16, 12))
    assert set(np.unique(low[np.isfinite(low)])) == {1.0, 3.0}
    assert np.isnan(low[2, 2]) and np.isnan(low[3, 3]) and low[5, 5] == 3.0
    # A non-integer ratio takes the general path, with the same rule.
    low = reduce_registered(depth, camera, camera.resized(20, 15))
    assert set(np.unique(low[np.isfinite(low)])) == {1.0, 3.0}


@pytest.mark.parametrize('model,d', [
    (PLUMB_BOB, (-0.28, 0.07, 0.001, -0.0005, 0.0)),
    (RATIONAL, (0.45, -0.09, 0.0004, -0.0002, 0.0, 0.78, -0.03, -0.01)),
    (EQUIDISTANT, (-0.01, 0.002, -0.001, 0.0002)),
])
def test_undistorted_rays_project_back_to_their_pixels(model, d):
    camera = Camera(80, 60, (60.0, 0.0, 39.2, 0.0, 61.0, 30.1, 0.0, 0.0, 1.0), d, model)
    rays = camera.undistorted_rays().reshape(-1, 2).astype(np.float64)
    pixels = camera.project(np.column_stack([rays, np.ones(len(rays))]) * 2.0)
    u, v = np.meshgrid(np.arange(80.0), np.arange(60.0))
    np.testing.assert_allclose(pixels, np.column_stack([u.ravel(), v.ravel()]), atol=2e-3)
    pinhole = np.abs((np.arange(80.0) - 39.2) / 60.0)
    assert not np.allclose(np.abs(camera.undistorted_rays()[30, :, 0]), pinhole, atol=1e-3)


RATIONAL_14 = (0.45, -0.09, 0.0004, -0.0002, 0.0, 0.78, -0.03, -0.01, 0.002, -0.001,
               0.0015, 0.0005, 0.01, -0.008)


@pytest.mark.parametrize('model,d', [
    (PLUMB_BOB, (-0.28, 0.07, 0.001, -0.0005, 0.03)),
    (RATIONAL, RATIONAL_14[:8]),
    (RATIONAL, RATIONAL_14[:12]),  # thin prism
    (RATIONAL, RATIONAL_14),  # and a tilted sensor (OAK-D's drivers publish 14)
    (EQUIDISTANT, (-0.01, 0.002, -0.001, 0.0002)),
])
def test_the_lens_models_project_as_opencv_does(model, d):
    # Against OpenCV itself, which the calibration that wrote D used: projecting undistorted
    # rays back through the module's own model would pass with any model.
    k = (300.0, 0.0, 159.2, 0.0, 305.0, 120.1, 0.0, 0.0, 1.0)
    camera = Camera(320, 240, k, d, model)
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-0.5, 0.5, (200, 2)), np.ones(200)]) * 2.0
    matrix = np.array(k).reshape(3, 3)
    if model == EQUIDISTANT:
        expected = cv2.fisheye.projectPoints(points[:, None], np.zeros(3), np.zeros(3),
                                             matrix, np.array(d))[0]
    else:
        expected = cv2.projectPoints(points, np.zeros(3), np.zeros(3), matrix, np.array(d))[0]
    np.testing.assert_allclose(camera.project(points), expected.reshape(-1, 2), atol=1e-6)


def test_more_distortion_coefficients_than_opencv_has_are_refused():
    with pytest.raises(GeometryError, match='camera D has 15 coefficients'):
        Camera(320, 240, (300.0, 0.0, 159.5, 0.0, 300.0, 119.5, 0.0, 0.0, 1.0), (0.0,) * 15,
               RATIONAL)


def test_transforms_from_quaternions_and_their_inverse():
    quarter = Transform.from_xyz_quaternion([1, 2, 3, 0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(quarter.apply([[1.0, 0.0, 0.0]]), [[1.0, 3.0, 3.0]], atol=1e-12)
    back = quarter.inverse().apply(quarter.apply([[0.3, -2.0, 5.0]]))
    np.testing.assert_allclose(back, [[0.3, -2.0, 5.0]], atol=1e-12)
    with pytest.raises(GeometryError, match='7 finite numbers'):
        Transform.from_xyz_quaternion([0, 0, 0, 0, 0, 0])
    with pytest.raises(GeometryError, match='quaternion'):
        Transform.from_xyz_quaternion([0, 0, 0, 0, 0, 0, 0])


def test_grids_pad_odd_sizes_and_keep_the_colour_intrinsics():
    color = pinhole_camera(1920, 1080, 1400.0)
    grids = plan_grids(color, 16)
    assert grids.output == color
    assert (grids.padded.width, grids.padded.height) == (1920, 1088)
    assert (grids.lr.width, grids.lr.height) == (120, 68)
    assert grids.padded.k == color.k
    # An output size: 960x540 at 8x.
    grids = plan_grids(color, 8, (960, 540))
    assert (grids.output.width, grids.output.height, grids.lr.width, grids.lr.height) == (
        960, 540, 120, 68)
    np.testing.assert_allclose(grids.output.matrix[0], [700.0, 0.0, 479.5])
    # Routes.
    assert plan_route(False, (68, 120), grids) == 'lr_grid'
    assert plan_route(False, (540, 960), grids) == 'registered'
    assert plan_route(True, (68, 120), grids) == 'raw'
    # LR-sized depth whose own camera_info is the LR grid's, within a driver's rounding, or
    # is cut elsewhere or has another lens.
    lr = grids.lr
    assert plan_route(False, (68, 120), grids, lr.moved(0.004, -0.004)) == 'lr_grid'
    assert plan_route(False, (68, 120), grids, lr.moved(1.0, 0.0)) == 'registered'
    lens = dataclasses.replace(lr, d=(0.1, 0.0, 0.0, 0.0, 0.0))
    assert plan_route(False, (68, 120), grids, lens) == 'registered'


def test_rig_poses_are_consistent_with_their_extrinsic(scene):
    rig = RIGS['azure_nfov']
    pose = color_pose(3, 8)
    point = np.array([[0.2, -0.1, 1.5]])
    in_color = pose.inverse().apply(point)
    in_depth = depth_pose(rig, pose).inverse().apply(point)
    np.testing.assert_allclose(rig.depth_to_color.apply(in_depth), in_color, atol=1e-12)
    depth = render_depth(scene, rig.depth, depth_pose(rig, pose))
    assert np.isfinite(depth).mean() > 0.5


def test_quaternions_round_trip_including_half_turns_and_transforms_compose_in_order():
    rng = np.random.default_rng(0)
    turns = [[0.7071067811865476, -0.7071067811865476, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]
    for q in turns + list(rng.normal(size=(200, 4))):
        q = np.asarray(q, float) / np.linalg.norm(q)
        t = Transform.from_xyz_quaternion([0.1, -0.2, 0.3, *q])
        back = Transform.from_xyz_quaternion(t.to_xyz_quaternion())
        np.testing.assert_allclose(back.rotation, t.rotation, atol=1e-9)
        np.testing.assert_allclose(back.translation, t.translation)
    a = Transform.from_xyz_quaternion([1, 0, 0, 0, 0, np.sin(0.4), np.cos(0.4)])
    b = Transform.from_xyz_quaternion([0, 2, 0, np.sin(0.3), 0, 0, np.cos(0.3)])
    point = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(a.then(b).apply(point), b.apply(a.apply(point)), atol=1e-12)
    assert not np.allclose(a.then(b).apply(point), a.apply(b.apply(point)))


def test_registered_depth_of_another_size_matches_the_truth():
    # Aligned depth at a resolution that is no multiple of the LR grid (960x540 for a
    # 1280x720 colour at 4x: 3 depth pixels per LR pixel), same camera, rendered on its own.
    scene = make_scene()
    color = RIGS['aligned'].color
    depth_camera = color.resized(960, 540)
    pose = color_pose(0, 1)
    depth = render_depth(scene, depth_camera, pose)
    truth = render_depth(scene, color, pose)
    grids = plan_grids(color, 4)
    low = reduce_registered(depth, depth_camera, grids.lr)
    expected = reduce_registered(truth, color, grids.lr)
    both = np.isfinite(low) & np.isfinite(expected)
    assert both.mean() > 0.9
    assert np.median(np.abs(low[both] - expected[both])) < 1e-3


def test_points_beyond_the_lens_models_turning_radius_do_not_ghost_into_the_image():
    # A strong barrel lens turns back beyond about 46 degrees: without the guard a point 63
    # degrees to the side lands at x_d = 2 (1 - 0.4 * 4 + 0.05 * 16) = 0.4, inside the image.
    camera = Camera(80, 60, (40.0, 0.0, 39.5, 0.0, 40.0, 29.5, 0.0, 0.0, 1.0),
                    (-0.4, 0.05, 0.0, 0.0, 0.0))
    far_side = np.array([[2.0, 0.0, 1.0]])
    assert np.isnan(camera.project(far_side)).all()
    inside = np.array([[0.5, 0.2, 1.0]])
    assert np.isfinite(camera.project(inside)).all()
    # An equidistant lens with zero coefficients is still no pinhole.
    fisheye = Camera(80, 60, camera.k, (0.0, 0.0, 0.0, 0.0), EQUIDISTANT)
    assert fisheye.distorted
    pixel = fisheye.project(np.array([[1.0, 0.0, 1.0]]))[0]
    np.testing.assert_allclose(pixel[0], 39.5 + 40.0 * np.pi / 4)


def test_pixels_beyond_the_lens_reach_have_no_ray():
    # A strong barrel lens on a wide image: its corners lie beyond where the model folds back.
    # Newton's method found them a ray on the folded branch (71 degrees off axis), one that
    # project() leaves without a pixel; such pixels have no ray.
    camera = Camera(640, 480, (280.0, 0.0, 319.5, 0.0, 280.0, 239.5, 0.0, 0.0, 1.0),
                    (-0.30, 0.08, 0.0, 0.0, -0.008))
    rays = camera.undistorted_rays().reshape(-1, 2).astype(np.float64)
    has_ray = np.isfinite(rays).all(axis=1)
    assert 0 < (~has_ray).sum() < len(rays) // 10  # the corners only
    back = camera.project(np.column_stack([rays, np.ones(len(rays))])[has_ray])
    u, v = np.meshgrid(np.arange(640.0), np.arange(480.0))
    np.testing.assert_allclose(back, np.column_stack([u.ravel(), v.ravel()])[has_ray],
                               atol=2e-3)


def test_scale_advice_names_the_scale_that_suits_the_sensor():
    from depth_sr_ros.ros.pipeline import scale_advice
    color = RIGS['tof'].color
    grids = plan_grids(color, 4)
    empty = np.full(grids.lr.shape, np.nan, np.float32)
    empty[:, :100] = 1.0  # a third of the LR grid reached
    advice, problem = scale_advice((172, 224), grids, empty, 'raw')
    assert advice.startswith('224x172 depth lands about 0.7 samples per LR pixel of 320x180')
    assert 'an 8x model would suit the sensor better' in advice
    assert 'most LR pixels get no depth' in advice and problem
    advice, problem = scale_advice((172, 224), grids, np.ones(grids.lr.shape), 'raw')
    assert 'an 8x model would suit' in advice and problem  # coarser than the grid: a warning
    dense, problem = scale_advice((480, 848), grids, np.ones(grids.lr.shape), 'raw')
    assert 'a 2x model would use more' in dense and 'get no depth' not in dense
    assert not problem  # finer than the grid: said, not a warning
    assert scale_advice((180, 320), grids, empty, 'lr_grid') == ('', False)
    # At the scale it suggests, the advice rests: the tof rig at 8x (2.7 samples per LR pixel)
    # was told 4x, where 0.7 samples asked for 8x again.
    advice, problem = scale_advice((172, 224), plan_grids(color, 8),
                                   np.ones(plan_grids(color, 8).lr.shape), 'raw')
    assert advice.endswith('(raw route)') and not problem, advice
    # A dense sensor at 8x is told the finest scale that keeps a sample per LR pixel (4x,
    # 2.5 there), not 2x (0.6, which would ask for 4x again); at 4x the advice rests.
    for scale, told in ((8, ': a 4x model would use more'), (4, '(raw route)')):
        grids = plan_grids(color, scale)
        advice, problem = scale_advice((285, 500), grids, np.ones(grids.lr.shape), 'raw')
        assert told in advice and not problem, advice


def test_a_slanted_surface_with_holes_is_not_biased_towards_its_near_side():
    # Next to holes the centre re-sampling cannot run and an LR pixel keeps a sample's value:
    # the sample nearest the pixel centre (of the front surface), not the smallest depth in
    # the pixel, which on a slope sits a fraction of the pixel's depth span nearer.
    depth_camera, lr = pinhole_camera(320, 240, 300.0), pinhole_camera(160, 120, 150.0)
    normal, offset = np.array([-0.6, 0.0, 1.0]), 1.0  # the plane z = 1 + 0.6 x, metres
    rays = depth_camera.undistorted_rays().reshape(-1, 2)
    depth = (offset / (np.column_stack([rays, np.ones(len(rays))]) @ normal)).reshape(240, 320)
    depth = depth.astype(np.float32)
    depth[np.random.default_rng(0).random(depth.shape) < 0.02] = np.nan
    to_color = Transform(translation=(0.02, 0.0, 0.0))
    out = register_raw(depth, depth_camera, to_color, lr)
    rays = lr.undistorted_rays().reshape(-1, 2)
    truth = ((offset + normal @ np.array(to_color.translation))
             / (np.column_stack([rays, np.ones(len(rays))]) @ normal)).reshape(120, 160)
    valid = np.isfinite(out)
    assert valid.mean() > 0.95
    error = np.abs(out[valid] - truth[valid])
    assert np.percentile(error, 95) < 0.5e-3  # keeping the smallest depth gave 0.68 mm


@pytest.mark.parametrize('name', ['d435', 'azure_nfov'])
def test_the_depth_pixels_registration_skips_land_nowhere(scene, name):
    # register_raw works only on the part of the depth image whose rays can reach the LR grid
    # at the frame's depths (cached per rounded depth range). Every depth pixel outside that
    # box must land outside the grid, also when a nearer object widens the range, and also
    # for a tilted rig with a distorted colour camera.
    from depth_sr_ros.geometry.registration import _follow_rays, _land, _rays_moved, _reachable
    rig = RIGS[name]
    depth = render_rig(scene, rig)['depth'].copy()
    depth[100:140, 300:340] = 0.3  # a hand in front of the camera
    color = Camera(1280, 720, rig.color.k, (0.1, -0.05, 0.001, 0.001, 0.0), PLUMB_BOB)
    tilted = rig.depth_to_color.then(Transform.from_xyz_quaternion(
        [0.02, 0.0, 0.0, 0.0, np.sin(0.05), 0.0, np.cos(0.05)]))
    for lr, to_color in ((plan_grids(rig.color, 4).lr, rig.depth_to_color),
                         (plan_grids(color, 4).lr, tilted)):
        low = register_raw(depth, rig.depth, to_color, lr)
        z = np.where(depth > 0, depth, np.nan).astype(np.float32).reshape(-1)
        landed = _land(*_follow_rays(z, _rays_moved(rig.depth, to_color, lr), lr)[1:], z,
                       lr.shape)
        lands = (landed.cell < landed.size).reshape(depth.shape)
        near, far = np.nanmin(z), np.nanmax(z)
        box, _ = _reachable(rig.depth, to_color, lr, 2.0 ** np.floor(np.log2(near)),
                            2.0 ** np.ceil(np.log2(far)))
        outside = lands.copy()
        outside[box] = False
        assert lands.sum() > 50000 and not outside.any()
        assert lands[box].size < 0.8 * depth.size  # the rig's wider depth view is cut
        assert np.nanmin(low) < 0.35  # the hand is registered


@pytest.mark.parametrize('name', ['d435', 'azure_nfov', 'tof'])
def test_raw_registration_on_threads_equals_it_in_one_part(scene, name):
    # register_raw splits the depth rows and the LR rows into parts, each on a thread, and
    # combines the parts' z-buffers and their choice of the sample closest to a pixel centre.
    # The parts meet in the LR pixels on their border: the split must not change a value.
    rig = RIGS[name]
    depth = render_rig(scene, rig)['depth'].copy()
    depth[60:200, 200:260] = 0.4  # a near object across the parts' borders
    lr = plan_grids(rig.color, RIG_SCALES[name]).lr
    whole = register_raw(depth, rig.depth, rig.depth_to_color, lr, threads=1)
    assert np.isfinite(whole).mean() > 0.5
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(
            register_raw(depth, rig.depth, rig.depth_to_color, lr, threads=threads), whole)


@pytest.mark.parametrize('scale', [1, 2, 4, 8])
def test_registered_depth_takes_the_block_path_at_any_alignment_offset(scale, monkeypatch):
    # The alignment moves the LR grid's principal point; at an integer ratio the blocks only
    # shift by whole depth pixels, so the block path serves every offset (it served none but
    # zero, and the general path took 10-15x as long at 1280x720). Both give the same pixels.
    from depth_sr_ros.geometry import registration
    rng = np.random.default_rng(scale)
    depth = rng.uniform(0.5, 4.0, (96, 128)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.nan
    camera = pinhole_camera(128, 96, 100.0)
    lr = camera.resized(128 // scale, 96 // scale)
    taken = []
    blocks = registration._reduce_blocks
    monkeypatch.setattr(registration, '_reduce_blocks',
                        lambda *args: taken.append(args[2]) or blocks(*args))
    for dx, dy in [(0.0, 0.0), (0.3, -0.2), (1.0, 0.0), (-2.6, 1.4), (7.25, -3.5)]:
        fast = reduce_registered(depth, camera, lr.moved(dx, dy))
        assert len(taken) == 1
        taken.clear()
        with monkeypatch.context() as general:
            general.setattr(registration, '_block_shift', lambda cells, block: None)
            reference = reduce_registered(depth, camera, lr.moved(dx, dy))
        assert not taken
        np.testing.assert_array_equal(fast, reference)
