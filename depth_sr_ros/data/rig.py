"""
A simulated depth camera beside the colour camera: training input made as the node makes it.

The node never sees depth made by downscaling the truth. It sees a depth camera's image,
taken from another place, with its own resolution, lens and faults, registered into the
colour camera's LR grid with a calibration that is a little wrong. ``simulate_rig`` makes a
training input that way from an HR ground truth in the colour camera's frame:

1. the HR truth becomes metric depth (the disparity-like training values are inverse depth
   between a drawn near and far distance);
2. a virtual depth camera is drawn (``draw_rig``): its samples per LR pixel, its intrinsics
   and lens distortion, a baseline and a small rotation;
3. the truth is rendered into that camera (geometry.registration.register_raw, the node's
   own code, run the other way: a renderer with a z-buffer);
4. the sensor acts in its own frame (``sensor_faults``): optical blur, flying pixels at
   edges, noise that grows with depth (Time-of-Flight or structured light), missing returns
   on grazing, dark (with the colour image given) and far surfaces and in blobs, millimetre
   quantisation;
5. the depth is registered into the colour camera's LR grid with the node's registration and
   a calibration with a drawn error (what remains after calibration and alignment): by the
   node's 'raw' route, or (``route='registered'``) registered first at the colour camera's
   full size with that calibration, as a driver's aligned depth is, and then reduced onto the
   LR grid by the node's 'registered' route.

``offset=True`` draws the calibration a real rig has before the node's alignment: its depth
sits 1 to 2.5 depth-camera pixels off the colour image, as measured on a phone ToF after its
factory calibration. With the colour image given, ``simulate_rig`` then aligns the registered
depth as the node does (alignment.align_still), so the network sees the residual that the
alignment leaves.

No global bias or scale error of the depth is simulated: the node normalises the metric
depth it gets by its own range and gives the output in it, so a bias or a scale passes
through the network unseen and cannot be learnt away. (The training values are disparity-like,
where a metric bias would bend the input a little; the node never sees it so.)
"""

import dataclasses
import math

import cv2
from depth_sr_ros.alignment import (
    align_still, finer_grid, lr_max_shift, lr_min_correction, matching_grid, MAX_SHIFT)
from depth_sr_ros.geometry.camera import Camera, pinhole_camera
from depth_sr_ros.geometry.grids import plan_grids, resize_color
from depth_sr_ros.geometry.registration import onto_lr_grid, register_raw
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.preprocessing import (
    depth_range, fill_missing, normalize_depth, valid_depth_mask)
import numpy as np

# The ranges each rig is drawn from (the issue of real sensors: 0.5 to 8 samples per LR
# pixel, baselines of 10 to 60 mm, up to 3 degrees of rotation). The samples per LR pixel
# are those of the image's centre; the node's figure (the depth image's pixels over the LR
# grid's) is larger by the square of the depth camera's wider view (draw_rig's margin).
SAMPLES_PER_LR_PIXEL = (0.5, 8.0)
BASELINE_M = (0.010, 0.060)
ROTATION_DEG = 3.0
NEAR_M, FAR_M = (0.5, 1.5), (2.0, 6.0)
# The calibration's error: what is left after a factory calibration and the node's alignment.
CALIBRATION_ROTATION_DEG = 0.3
CALIBRATION_TRANSLATION_M = 0.003
# The misregistration before the alignment, depth-camera pixels (``offset``).
OFFSET_DEPTH_PIXELS = (1.0, 2.5)
# sensor_faults: a depth edge is a step between neighbouring pixels of more than EDGE_STEP of
# the depth where inverse depth bends (a plane's inverse depth is linear in the image, so a
# steep plane, whose pixels step as much, is no edge); a surface seen more than GRAZING_DEG
# from face-on returns little light.
EDGE_STEP = 0.05
GRAZING_DEG = 75.0


@dataclasses.dataclass(frozen=True)
class SimulatedRig:
    """One drawn rig: the colour camera (HR grid), the depth camera and their extrinsics."""

    color: Camera
    depth: Camera
    depth_to_color: Transform  # the true one
    calibrated: Transform  # the one the registration is given (with the calibration error)
    scale: int
    near: float  # metres of the truth's nearest and farthest values
    far: float


def rotation(axis, degrees):
    """Return the Transform of a rotation by ``degrees`` about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    angle = math.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    return Transform(tuple(r.ravel()))


def _random_axis(rng):
    axis = rng.standard_normal(3)
    return axis / np.linalg.norm(axis)


def draw_distances(rng):
    """Return a scene's (near, far) metres, drawn from NEAR_M and FAR_M."""
    return rng.uniform(*NEAR_M), rng.uniform(*FAR_M)


def draw_rig(rng, size, scale, calibration_error=True, offset=False, field_width=None,
             distances=None):
    """
    Return a SimulatedRig for an HR colour image of ``size`` = (height, width) at ``scale``.

    The colour camera's field of view is drawn between 50 and 90 degrees; the depth camera
    looks the same way from a drawn baseline, a little rotated, with enough field of view to
    cover the colour camera's and a drawn number of samples per LR pixel (per LR pixel of the
    image's centre, in angle: the depth camera's image covers more than the colour camera's,
    so its pixels outnumber the LR grid's by that and the square of the margin).

    :param offset: add a calibration rotation that moves the depth OFFSET_DEPTH_PIXELS
        (drawn) in a drawn direction. Drawn after the rest and drawn without it too, so the
        rig, and what the generator draws next, is otherwise the one drawn without it.
    :param field_width: the width, HR pixels, that the field of view spans (default: the
        image's). A training crop is a window of a larger image: its angles per pixel, and so
        the pixels a calibration error or a baseline's parallax moves its depth by, are the
        whole image's, and its depth camera reaches as far past it, in angle.
    :param distances: the scene's (near, far) metres instead of those drawn (which are drawn
        either way, so that the draws after them stay the same).
    """
    height, width = size
    focal = (field_width or width) / (2 * math.tan(math.radians(rng.uniform(50, 90)) / 2))
    color = pinhole_camera(width, height, focal)
    lr = plan_grids(color, scale).lr
    per_pixel = math.exp(rng.uniform(*np.log(SAMPLES_PER_LR_PIXEL)))
    depth_focal = lr.matrix[0, 0] * math.sqrt(per_pixel)
    margin = rng.uniform(1.15, 1.4)  # field of view beyond the colour camera's
    # The margin is a share of the whole field: a crop's depth camera reaches as far past the
    # crop, in angle, as the whole image's past the image (its turn and parallax are angles).
    reach = margin if field_width is None else 1 + (margin - 1) * field_width / width
    depth_width = max(8, round(lr.width * math.sqrt(per_pixel) * reach))
    depth_height = max(8, round(lr.height * math.sqrt(per_pixel) * reach))
    k = (depth_focal, 0.0, (depth_width - 1) / 2 + rng.uniform(-2, 2), 0.0, depth_focal,
         (depth_height - 1) / 2 + rng.uniform(-2, 2), 0.0, 0.0, 1.0)
    distortion = (rng.uniform(-0.2, 0.05), rng.uniform(-0.02, 0.05), 0.0, 0.0, 0.0) if (
        rng.random() < 0.5) else ()
    depth = Camera(depth_width, depth_height, k, distortion)
    # A drawn lens that folds back inside the image (k1, k2 < 0 over a wide view) would leave
    # the pixels past the fold without a ray: it is halved until it reaches the far corner.
    corner = math.hypot(max(k[2], depth_width - 1 - k[2]) / depth_focal,
                        max(k[5], depth_height - 1 - k[5]) / depth_focal)
    while depth.reach() < 1.05 * corner:
        depth = dataclasses.replace(depth, d=tuple(v / 2 for v in depth.d))
    direction = rng.uniform(-0.35, 0.35)  # mostly side by side
    length = rng.uniform(*BASELINE_M) * rng.choice((-1, 1))
    translation = (length * math.cos(direction), length * math.sin(direction),
                   rng.uniform(-0.003, 0.003))
    turn = rotation(_random_axis(rng), rng.uniform(0, ROTATION_DEG))
    depth_to_color = Transform(turn.rotation, translation)
    calibrated = depth_to_color
    if calibration_error:
        error = rotation(_random_axis(rng), rng.uniform(0, CALIBRATION_ROTATION_DEG))
        shift = rng.uniform(-CALIBRATION_TRANSLATION_M, CALIBRATION_TRANSLATION_M, 3)
        calibrated = depth_to_color.then(Transform(error.rotation, tuple(shift)))
    near, far = draw_distances(rng)
    if distances is not None:
        near, far = distances
    # The offset is drawn with or without it, so that what the generator draws next (the
    # sensor's faults) is the same for the rig with and without the offset.
    pixels, direction = rng.uniform(*OFFSET_DEPTH_PIXELS), rng.uniform(0, 2 * math.pi)
    if offset:
        # A rotation about an axis in the image plane moves the image across it.
        angle = math.degrees(math.atan(pixels / depth_focal))
        axis = (-math.sin(direction), math.cos(direction), 0.0)
        calibrated = calibrated.then(rotation(axis, angle))
    return SimulatedRig(color, depth, depth_to_color, calibrated, scale, near, far)


def to_metres(values, near, far):
    """Return metric depth of disparity-like values in 0..1 (1 = ``near``, 0 = ``far``)."""
    values = np.asarray(values, np.float32)
    inverse = 1 / far + np.clip(values, 0, 1) * (1 / near - 1 / far)
    return np.where(np.isfinite(values), 1 / inverse, np.nan).astype(np.float32)


def metric_view(near, far):
    """
    Return a function that shows disparity-like values as the node sees a depth camera's.

    Middlebury's ground truth is disparity (large = near, the inverse of depth); a depth camera
    gives metres (large = far), which the node normalises to 0..1 over the image. The function
    maps values in 0..1 (1 = near) to the metres of a scene from ``near`` to ``far`` (e.g.
    draw_distances'), normalised the node's way (0 = near, 1 = far); NaN stays NaN.
    """

    def view(values):
        return ((to_metres(values, near, far) - near) / (far - near)).astype(np.float32)
    return view


def from_metres(depth, near, far):
    """Invert to_metres (NaN stays NaN)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return ((1 / depth - 1 / far) / (1 / near - 1 / far)).astype(np.float32)


def depth_edges(depth, least_step=0.0):
    """
    Return the pixels within a pixel of a depth edge of ``depth`` (metres, no NaN).

    An edge lies between neighbours where inverse depth bends by more than EDGE_STEP of
    itself (a step of that share of the depth); on a plane, however steep, it does not bend.
    ``least_step``: the bend (1/m) that is at least needed too, e.g. above the truth's own
    quantisation: one level of Middlebury's integer disparity is a small step near the camera
    and a large one in metres far away, where it would be an edge on every stair of a wall.
    """
    inverse = 1 / depth
    bend = np.zeros(depth.shape, np.uint8)
    for axis in (0, 1):
        middle = [slice(None), slice(None)]
        middle[axis] = slice(1, -1)
        second = np.abs(np.diff(inverse, 2, axis=axis))
        bend[tuple(middle)] |= (second > EDGE_STEP * inverse[tuple(middle)]) & (
            second > least_step)
    return cv2.dilate(bend, np.ones((3, 3), np.uint8)) > 0


def quantum(values):
    """Return the smallest step between the distinct finite ``values`` (0 with fewer than two)."""
    distinct = np.unique(values[np.isfinite(values)])
    steps = np.diff(distinct)
    steps = steps[steps > 1e-6]
    return float(steps.min()) if steps.size else 0.0


def sensor_faults(depth, focal, rng, brightness=None, least_step=0.0):
    """
    Return a depth camera's image of the true ``depth`` (metres, NaN = none) in its frame.

    Each fault's strength is drawn per call, down to none: optical blur (mixing the two sides
    of an edge, as a real lens and a ToF pixel do), flying pixels on edges (depth_edges),
    noise of a Time-of-Flight (growing with depth) or structured-light camera (with its
    square), lost returns on edges, on surfaces seen more than GRAZING_DEG from face-on, at
    the far end and in blobs, and millimetre quantisation.

    :param focal: the depth camera's focal length, pixels (a depth step per pixel is a
        surface's angle only through it).
    :param brightness: the scene's brightness (0..1) seen from the depth camera
        (``seen_brightness``): dark surfaces return little light, the less the farther they
        are; None: no such losses (and the draws of earlier versions).
    :param least_step: depth_edges' (the truth's quantisation, in inverse metres).
    """
    seen = np.isfinite(depth)
    # Holes take their nearest value, so that neither the blur nor the edge test below mixes a
    # valid pixel with an invented depth (they are holes again at the end).
    filled = fill_missing(depth, seen) if seen.any() else np.ones(depth.shape, np.float32)
    edge = depth_edges(filled, least_step)
    # tan of the angle between a surface and the view: depth's change per pixel against the
    # pixel's width at that depth (depth / focal).
    steep = np.hypot(*np.gradient(filled)) * focal > math.tan(math.radians(GRAZING_DEG)) * filled
    sigma = rng.uniform(0, 1.0)
    if sigma > 0.2:
        filled = cv2.GaussianBlur(filled, (0, 0), sigma)
    kernel = np.ones((3, 3), np.uint8)
    near, far = cv2.erode(filled, kernel), cv2.dilate(filled, kernel)
    flying = edge & (rng.random(depth.shape) < rng.uniform(0, 0.5))
    out = np.where(flying, near + rng.random(depth.shape).astype(np.float32) * (far - near),
                   filled)
    if rng.random() < 0.5:  # Time-of-Flight: about 0.2-1 % of the depth
        noise = rng.uniform(0.002, 0.01) * out
    else:  # structured light: grows with the square of the depth, per metre
        noise = rng.uniform(0.001, 0.005) * out ** 2
    out = out + (rng.standard_normal(depth.shape) * noise).astype(np.float32)
    # Grazing surfaces and the farthest part return little light.
    lost = steep & ~edge & (rng.random(depth.shape) < rng.uniform(0, 0.8))
    lost |= edge & (rng.random(depth.shape) < rng.uniform(0, 0.3))
    if rng.random() < 0.3 and seen.any():
        lost |= seen & (filled > np.quantile(filled[seen], rng.uniform(0.9, 1.0)))
    if brightness is not None and seen.any():
        # A return falls with the surface's reflectance over the square of its distance;
        # the colour's brightness stands for the reflectance (NIR albedo follows it loosely).
        median = np.median(filled[seen])
        signal = np.nan_to_num(brightness, nan=1.0) * (median / filled) ** 2
        lost |= (signal < rng.uniform(0, 0.1)) & (rng.random(depth.shape) < rng.uniform(0.5, 1))
    blobs = np.zeros(depth.shape, np.uint8)
    for _ in range(int(rng.integers(0, 4))):
        centre = (int(rng.integers(depth.shape[1])), int(rng.integers(depth.shape[0])))
        cv2.circle(blobs, centre, int(rng.integers(1, max(2, min(depth.shape) // 12))), 1, -1)
    lost |= blobs > 0
    out = np.round(out * 1000) / 1000
    out[lost | ~seen | ~(out > 0)] = np.nan
    return out.astype(np.float32)


def truth_values(depth):
    """
    Return (values, near, far): an HR ground truth as simulate_rig takes it.

    ``values`` is ``depth`` normalised to its own valid range (near..far), NaN where it has
    no value; denormalize_depth(simulate_rig(values, ...), near, far) is in its units again.
    """
    valid = valid_depth_mask(depth)
    near, far = depth_range(depth, valid)
    return normalize_depth(np.where(valid, depth, np.nan), near, far), near, far


def render_depth_camera(truth, rig):
    """Return the depth camera's view of the HR truth (metres in the colour frame), NaN = none."""
    return register_raw(truth, rig.color, rig.depth_to_color.inverse(), rig.depth)


def seen_brightness(color, depth, rig):
    """
    Return the colour image's brightness (0..1) on the surface each depth pixel sees.

    Each pixel of the depth camera's image ``depth`` (metres, NaN = none) is moved into the
    colour camera through the rig's true extrinsic and looks up the HR ``color`` there (RGB,
    uint8, or float in 0..1 as the training crops hold it); NaN where it has no depth or lands
    outside the colour image.
    """
    rays = rig.depth.undistorted_rays()
    points = np.dstack([rays * depth[..., None], depth]).reshape(-1, 3)
    uv = rig.color.project(rig.depth_to_color.apply(points)).astype(np.float32)
    if color.dtype != np.uint8:  # the training crops' 0..1, back to the pairs' own 8 bits
        color = np.rint(np.clip(color, 0, 1) * 255).astype(np.uint8)
    grey = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2GRAY).astype(np.float32)
    looked_up = cv2.remap(grey / 255, uv[:, 0].reshape(depth.shape),
                          uv[:, 1].reshape(depth.shape), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    return np.where(np.isfinite(depth), looked_up, np.nan).astype(np.float32)


def rig_capture(values, scale, rng, faults=True, calibration_error=True, rig=None,
                offset=False, color=None, field_width=None, distances=None):
    """
    Return (rig, depth): a rig (drawn unless given) and its depth camera's image of the truth.

    ``values`` as simulate_rig's; ``depth`` in metres on the depth camera's grid, NaN = none.
    A given rig must be drawn for ``scale``: the registration follows the rig's own scale.
    ``color``: the HR colour image, whose dark surfaces then return less (sensor_faults).
    ``field_width``, ``distances``: draw_rig's.
    """
    if rig is None:
        rig = draw_rig(rng, values.shape, scale, calibration_error, offset, field_width,
                       distances)
    elif rig.scale != scale:
        raise ValueError(f'the rig was drawn for {rig.scale}x, not {scale}x')
    truth = to_metres(np.where(values >= 0, values, np.nan), rig.near, rig.far)
    depth = render_depth_camera(truth, rig)
    if not faults:
        return rig, depth
    brightness = None if color is None else seen_brightness(color, depth, rig)
    # A step of one level of the truth, and a little more, is no edge (depth_edges).
    least_step = 1.5 * quantum(values) * (1 / rig.near - 1 / rig.far)
    return rig, sensor_faults(depth, rig.depth.matrix[0, 0], rng, brightness, least_step)


def rig_registration(rig, depth, extrinsics=None, route='raw'):
    """
    Return register(correction, finer=1): the node's registration of the rig's depth image.

    It registers ``depth`` into the colour camera's LR grid, or a grid ``finer`` times finer
    (alignment.matching_grid), with the LR grid moved by ``correction`` (dx, dy) LR pixels as
    the node applies its alignment; through the rig's calibrated extrinsics, or ``extrinsics``
    (e.g. rig.depth_to_color, the true ones). ``route``: the node's 'raw' route, or
    'registered': the depth registered at the colour camera's full size first (a driver's
    aligned depth, with the same extrinsics), then reduced as the node reduces it.
    """
    lr = plan_grids(rig.color, rig.scale).lr
    extrinsics = rig.calibrated if extrinsics is None else extrinsics
    camera = rig.depth
    if route == 'registered':
        depth, camera, extrinsics = register_raw(depth, rig.depth, extrinsics, rig.color), \
            rig.color, None
    elif route != 'raw':
        raise ValueError(f"a rig's depth takes the 'raw' or 'registered' route, not {route!r}")

    def register(correction, finer=1):
        return onto_lr_grid(depth, route, camera, matching_grid(lr, finer), extrinsics,
                            (correction[0] * finer, correction[1] * finer))
    return register


def simulate_rig(values, scale, rng, faults=True, calibration_error=True, rig=None,
                 offset=False, color=None, align=True, field_width=None, distances=None,
                 route='raw'):
    """
    Return the LR input the node would make of a scene, as ``values``' units; NaN = no depth.

    :param values: (H, W) HR ground truth in the colour frame, normalised disparity-like
        values in 0..1 (larger = nearer), as the training crops hold them.
    :param faults: apply sensor_faults (False: a perfect depth camera).
    :param rig: a SimulatedRig to use instead of drawing one.
    :param offset: draw the rig with the calibration error before alignment (draw_rig).
    :param color: the HR colour image (RGB): its dark surfaces return less light to the depth
        camera, and the registered depth is aligned to it as the node does.
    :param align: False: no alignment (the node with alignment:=off).
    :param field_width: the width the colour camera's field of view spans (draw_rig).
    :param distances: the scene's (near, far) metres instead of drawn ones (draw_rig), e.g.
        those of the metric_view the result is shown in, so that the sensor's noise, which
        grows with the metres, is that of the metres shown.
    :param route: how the depth reaches the LR grid (rig_registration): 'raw' or 'registered'.
    """
    rig, depth = rig_capture(values, scale, rng, faults, calibration_error, rig, offset, color,
                             field_width, distances)
    register = rig_registration(rig, depth, route=route)
    registered = register((0.0, 0.0))
    if color is not None and align:  # on the padded grid, as the node shows it (resize_color)
        shown = resize_color(color, plan_grids(rig.color, scale))
        registered, _ = align_still(register, shown, lr_max_shift(MAX_SHIFT, scale),
                                    finer_grid(scale), registered,
                                    min_correction=lr_min_correction(scale))
    return from_metres(registered, rig.near, rig.far)
