"""
A small 3D scene and the camera rigs that look at it, with depth in the colour frame known.

The player's rigs and the registration tests use it.

The scene is the sample pair (Middlebury "Art") lifted to a coloured point cloud: every pixel
of the pair, densified so that the nearest views still see a closed surface, placed at its
metric depth in front of a scene camera. Each rig renders its colour and depth cameras from
that cloud with a z-buffer (the nearest point wins), its depth camera through its own lens
distortion. ``render_truth`` gives the depth of the same cloud in the colour camera: what a
perfect registration and super-resolution would publish.
"""

import dataclasses

import cv2
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair, SAMPLE_DIR
from depth_sr_ros.data.sequences import COLOR_SIZE, FOCAL, make_sequence
from depth_sr_ros.geometry.camera import Camera, pinhole_camera, RATIONAL
from depth_sr_ros.geometry.registration import splat
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.paths import DEFAULT_MODEL
from depth_sr_ros.preprocessing import fill_missing
import numpy as np

SCENE_FOCAL = 307.0  # px of the 463x370 sample: a 74 x 62 degree view of the scene
DENSIFY = 4  # points per sample pixel and axis


@dataclasses.dataclass(frozen=True)
class Rig:
    """A colour camera and a depth camera; ``depth_to_color`` maps depth points to colour."""

    name: str
    color: Camera
    depth: Camera
    depth_to_color: Transform
    registered: bool  # the depth is published in the colour frame
    description: str
    # the shipped model that suits the depth camera: the one whose LR grid gets about one
    # depth sample per pixel or more (the README's camera table)
    model: str = DEFAULT_MODEL


def _tilted(degrees_about_y, translation):
    a = np.radians(degrees_about_y)
    c, s = np.cos(a), np.sin(a)
    return Transform((c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c), translation)


COLOR_720P = pinhole_camera(1280, 720, 910.0)
AZURE_NFOV = Camera(640, 576, (504.0, 0.0, 320.5, 0.0, 504.0, 290.0, 0.0, 0.0, 1.0),
                    (0.45, -0.09, 0.0004, -0.0002, 0.0, 0.78, -0.03, -0.01), RATIONAL)

RIGS = {
    'aligned': Rig('aligned', COLOR_720P, COLOR_720P, Transform(), True,
                   'depth at the colour resolution in the colour frame (RealSense '
                   'align_depth, Azure Kinect depth_to_rgb)'),
    'd435': Rig('d435', COLOR_720P, pinhole_camera(848, 480, 430.0),
                Transform(translation=(0.015, 0.0, 0.0)), False,
                'RealSense D435: 848x480 depth in its own frame, 15 mm from the colour camera'),
    'azure_nfov': Rig('azure_nfov', COLOR_720P, AZURE_NFOV,
                      _tilted(6.0, (0.032, 0.002, 0.001)), False,
                      'Azure Kinect NFOV unbinned: 640x576 depth with rational_polynomial '
                      'distortion, 32 mm away and tilted by 6 degrees'),
    'tof': Rig('tof', COLOR_720P, pinhole_camera(224, 172, 210.0),
               Transform(translation=(-0.025, 0.0, 0.0)), False,
               'a 224x172 ToF camera next to a 1280x720 colour camera, 25 mm apart',
               'ahmf_x8_sensor.pt'),
}


def recommended_model(rig):
    """Return the shipped model file name that suits rig ``rig`` (a name of RIGS, or other)."""
    return RIGS[rig].model if rig in RIGS else DEFAULT_MODEL


@dataclasses.dataclass(frozen=True)
class Scene:
    """A coloured point cloud in the scene camera's optical frame."""

    points: np.ndarray  # (N, 3) float32 metres
    colors: np.ndarray  # (N, 3) uint8 RGB


def make_scene(densify=DENSIFY):
    """Return the sample pair as a dense coloured point cloud."""
    pair = load_pair(SAMPLE_DIR, 'art')
    # The sample's disparity is 8-bit: at 2.8 m one step is 4 cm. Smooth the steps away
    # within surfaces (an edge-keeping bilateral filter), then densify linearly within
    # surfaces and by nearest neighbour across depth edges, so no point floats between two.
    disparity = cv2.bilateralFilter(pair['depth'].astype(np.float32), 9, 3.0, 4.0)
    disparity[pair['depth'] == 0] = 0
    h, w = disparity.shape
    big = (w * densify, h * densify)
    smooth = cv2.resize(disparity, big, interpolation=cv2.INTER_LINEAR)
    blocky = cv2.resize(disparity, big, interpolation=cv2.INTER_NEAREST)
    depth = disparity_to_metres(np.where(np.abs(smooth - blocky) < 1.0, smooth, blocky))
    rgb = cv2.resize(pair['rgb'], big, interpolation=cv2.INTER_LINEAR)
    camera = pinhole_camera(w, h, SCENE_FOCAL).resized(*big)
    rays = camera.undistorted_rays()
    valid = depth > 0
    z = depth[valid]
    points = np.column_stack([rays[valid][:, 0] * z, rays[valid][:, 1] * z, z])
    return Scene(points.astype(np.float32), rgb[valid])


def _splat(scene, camera, pose):
    """Return (depth (H, W) NaN = none, index of the point seen in each pixel or -1)."""
    points = pose.inverse().apply(scene.points)  # scene frame -> camera frame
    u, v = camera.project(points).T
    return splat(u, v, points[:, 2], camera.shape, winner=True)


def render_depth(scene, camera, pose):
    """Return the depth (z) of the scene in ``camera`` at ``pose``: float32 m, NaN = none."""
    return _splat(scene, camera, pose)[0]


def render_color(scene, camera, pose):
    """Return the RGB uint8 view of the scene; pixels no point reaches take the nearest."""
    _, winner = _splat(scene, camera, pose)
    hit = winner >= 0
    image = np.zeros(camera.shape + (3,), np.uint8)
    image[hit] = scene.colors[winner[hit]]
    if hit.all() or not hit.any():
        return image
    return np.stack([fill_missing(image[:, :, c], hit) for c in range(3)], axis=2).astype(
        np.uint8)


def color_pose(index, frames):
    """Return the colour camera's pose in the scene for frame ``index``: a slow small pan."""
    phase = 2 * np.pi * index / max(frames, 1)
    return _tilted(2.0 * np.sin(phase), (0.03 * np.sin(phase), 0.01 * np.sin(2 * phase), 0.0))


def depth_pose(rig, pose):
    """Return the depth camera's pose in the scene from the colour camera's pose."""
    r_c = np.asarray(pose.rotation).reshape(3, 3)
    r_dc = np.asarray(rig.depth_to_color.rotation).reshape(3, 3)
    t = r_c @ np.asarray(rig.depth_to_color.translation) + np.asarray(pose.translation)
    return Transform(tuple((r_c @ r_dc).ravel()), tuple(t))


def render_rig(scene, rig, index=0, frames=1):
    """
    Return one frame of ``rig`` as a dict of images.

    'color' (RGB uint8), 'depth' (metres, NaN = none, as the depth camera sees it) and
    'truth' (the scene's depth in the colour camera).
    """
    pose = color_pose(index, frames)
    truth = render_depth(scene, rig.color, pose)
    depth = truth if rig.registered else render_depth(scene, rig.depth, depth_pose(rig, pose))
    return {'color': render_color(scene, rig.color, pose), 'depth': depth, 'truth': truth}


# The player's cameras: its default 'registered' sequence and the scene rigs above.
RIG_NAMES = ('registered',) + tuple(RIGS)
RIG_FRAMES = 8  # distinct views rendered for a scene rig (each takes about a second)
COLOR_FRAME = 'camera_color_optical_frame'
DEPTH_FRAME = 'camera_depth_optical_frame'


def rig_extrinsic(name):
    """Return [x, y, z, qx, qy, qz, qw] of a raw rig's depth-to-colour transform, else []."""
    rig = RIGS.get(name)
    if rig is None or rig.registered:
        return []
    return rig.depth_to_color.to_xyz_quaternion()


def rig_frames(name, frames, scale):
    """
    Return (frames, colour camera, depth camera, depth frame_id) for rig ``name``.

    Each frame is a dict of 'depth' (metres, NaN = none, as the sensor sends it), 'color'
    (RGB uint8) and 'truth' (metres in the colour camera, colour size).
    """
    if name == 'registered':
        width, height = COLOR_SIZE
        out = [{'depth': lr, 'color': color, 'truth': hr}
               for lr, color, hr in make_sequence(frames, scale)]
        color = pinhole_camera(width, height, FOCAL)
        return out, color, color.resized(width // scale, height // scale), COLOR_FRAME
    if name not in RIGS:
        raise ValueError(f"rig must be one of {', '.join(RIG_NAMES)}, not {name!r}")
    rig = RIGS[name]
    scene = make_scene()
    count = min(frames, RIG_FRAMES)
    out = [render_rig(scene, rig, i, count) for i in range(count)]
    return out, rig.color, rig.depth, COLOR_FRAME if rig.registered else DEPTH_FRAME
