"""
Registration: a depth image brought onto the colour camera's LR grid.

- ``reduce_registered``: depth already in the colour camera's frame, at any other size
  (RealSense align_depth, Azure Kinect depth_to_rgb, depth_image_proc's register): each LR
  pixel takes the median of the valid depth samples that fall into it, as one of those samples,
  so no value mixes two surfaces; a pixel whose samples are mostly invalid stays invalid.
- ``register_raw``: depth in the depth camera's own frame: every depth pixel is back-projected
  through the depth camera's intrinsics and distortion, moved by the depth-to-colour extrinsic
  and projected into the colour camera's LR grid with a z-buffer, the nearest surface winning.
- ``splat``: the z-buffer itself, for any points (the scene renderer uses it).
"""

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import functools
import math
import os

import cv2
from depth_sr_ros.geometry.camera import GeometryError
import numpy as np

# A registered LR pixel is valid when at least this share of its depth samples is.
MIN_VALID_SHARE = 0.5
# Raw registration: samples within this share of the nearest depth in an LR pixel belong to
# the nearest surface (a slanted surface spans a few per cent of its depth across a pixel).
FRONT_TOLERANCE = 0.03
# Raw registration splits its per-point and per-pixel work into this many parts, run on as
# many threads (numpy releases the GIL inside its loops). On the 2-core development VM two
# threads save 10-25 % (depth_sr_benchmark --registration shows both): numpy's passes are
# bound by memory more than by arithmetic there.
REGISTRATION_THREADS = min(4, os.cpu_count() or 1)


def reduce_registered(depth, depth_camera, lr, min_valid_share=MIN_VALID_SHARE):
    """
    Bring depth that is registered to the colour camera onto the LR grid ``lr``.

    Every depth pixel lands in the LR pixel that contains its centre (through both sets of
    intrinsics; both images share the colour camera's lens, so no distortion is involved). An
    LR pixel whose samples are at least ``min_valid_share`` valid takes their lower median, one
    of the samples: never an average of a foreground and a background surface. Others stay
    invalid (NaN). Integer block ratios take a fast block path.

    :param depth: (H, W) float32 metres, NaN = invalid, on ``depth_camera``'s grid.
    :return: (h, w) float32 metres on ``lr``'s grid.
    """
    k_d, k_l = depth_camera.matrix, lr.matrix
    sx, sy = k_l[0, 0] / k_d[0, 0], k_l[1, 1] / k_d[1, 1]
    # LR coordinate of a depth pixel centre: x_l = sx * (u - cx_d) + cx_l (same camera).
    ox, oy = k_l[0, 2] - sx * k_d[0, 2], k_l[1, 2] - sy * k_d[1, 2]
    block = round(1 / sx) if sx > 0 else 0
    aligned = (block >= 1 and abs(1 / sx - block) < 1e-6 and abs(1 / sy - block) < 1e-6
               and abs(ox - (0.5 / block - 0.5)) < 1e-6 and abs(oy - (0.5 / block - 0.5)) < 1e-6)
    if aligned and depth.shape[0] >= lr.height * block and depth.shape[1] >= lr.width * block:
        return _reduce_blocks(depth, block, lr.shape, min_valid_share)
    u = np.rint(sx * np.arange(depth.shape[1]) + ox).astype(np.int64)
    v = np.rint(sy * np.arange(depth.shape[0]) + oy).astype(np.int64)
    cols, rows = np.meshgrid(u, v)
    return _reduce_cells(depth.ravel(), rows.ravel(), cols.ravel(), lr.shape, min_valid_share)


def _reduce_blocks(depth, block, shape, min_valid_share):
    """reduce_registered for LR pixels that are exact block x block squares of depth pixels."""
    h, w = shape
    blocks = depth[:h * block, :w * block].reshape(h, block, w, block).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(h, w, block * block)
    valid = np.isfinite(blocks) & (blocks > 0)
    count = valid.sum(axis=2)
    ordered = np.sort(np.where(valid, blocks, np.inf), axis=2)  # valid samples first
    median = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, :, None] // 2, 2)[:, :, 0]
    out = median.astype(np.float32)
    out[count < min_valid_share * block * block] = np.nan
    out[count == 0] = np.nan
    return out


def _reduce_cells(values, rows, cols, shape, min_valid_share):
    """Lower median of the valid values per LR cell, for any sample-to-cell assignment."""
    h, w = shape
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    cell = rows[inside] * w + cols[inside]
    values = values[inside]
    total = np.bincount(cell, minlength=h * w)
    valid = np.isfinite(values) & (values > 0)
    cell, values = cell[valid], values[valid].astype(np.float64)
    count = np.bincount(cell, minlength=h * w)
    out = np.full(h * w, np.nan, np.float32)
    if cell.size:
        order = np.lexsort((values, cell))
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        take = count > 0
        out[take] = values[order][start[take] + (count[take] - 1) // 2]
    out[(count < min_valid_share * total) | (count == 0)] = np.nan
    return out.reshape(h, w)


def splat(u, v, z, shape, winner=False):
    """
    Z-buffer points into an image: return depth (H, W) float32, NaN where no point lands.

    Each point lands in the pixel whose centre is nearest to (u, v); NaN coordinates and
    z <= 0 land nowhere. In each pixel the nearest surface wins: of the points within
    FRONT_TOLERANCE of the smallest z there, the one that lands closest to the pixel centre
    gives the value, so a slanted surface is not biased towards its near side.

    :param u, v: (N,) pixel coordinates (column, row).
    :param z: (N,) depth of each point along the camera's axis.
    :param winner: also return (H, W) the index of the point that gave each pixel (-1 where
        none), as (depth, winner).
    """
    with np.errstate(invalid='ignore'):
        behind = ~(np.asarray(z) > 0)
    landed = _land(np.where(behind, np.nan, u), v, z, shape)
    nearest = _nearest(landed)
    everywhere = np.arange(landed.size + 1) < landed.size  # each pixel, not the slot past it
    [chosen] = _closest_in_front([landed], nearest, everywhere, map)
    depth = np.full(landed.size, np.nan, np.float32)
    depth[landed.cell[chosen]] = landed.z[chosen]
    if not winner:
        return depth.reshape(shape)
    index = np.full(landed.size, -1, np.int64)
    index[landed.cell[chosen]] = chosen
    return depth.reshape(shape), index.reshape(shape)


@dataclasses.dataclass
class _Landed:
    """
    Points and the flat pixel each lands in (``size``, one past the image, where none).

    Every point is kept, so that indices into these arrays are the caller's: gathering the
    ones that land would cost more than carrying the others along.
    """

    size: int  # the image's pixel count
    cell: np.ndarray
    z: np.ndarray
    u: np.ndarray  # column + 0.5: a landed point's integer part is its column
    v: np.ndarray


def _land(u, v, z, shape):
    """
    Return the _Landed points of (u, v, z): each in the pixel whose centre is nearest.

    Points with a NaN coordinate land nowhere (the caller sets them for z <= 0).
    """
    h, w = shape
    with np.errstate(invalid='ignore'):
        # Shifted by half a pixel, a non-negative coordinate's integer part is its pixel.
        u, v = u + np.float32(0.5), v + np.float32(0.5)
        lands = (u > 0) & (u < w) & (v > 0) & (v < h)
        cell = np.where(lands, v.astype(np.intp) * w + u.astype(np.intp), h * w)
    return _Landed(h * w, cell, z, u, v)


def _nearest(landed):
    """Return the smallest z landed in each pixel (flat, one past the image for the rest)."""
    nearest = np.full(landed.size + 1, np.inf, landed.z.dtype)
    with np.errstate(invalid='ignore'):  # NaN depths, all in the slot past the image
        np.minimum.at(nearest, landed.cell, landed.z)
    nearest[landed.size] = np.nan  # nothing is in front of the points that land nowhere
    return nearest


def _closest_in_front(parts, nearest, pixels, mapper):
    """
    Return, for each _Landed of ``parts``, which of its points give their pixel's value.

    Only pixels where ``pixels`` (flat, with the slot past the image) is true count. Of a
    pixel's points (from every part) within FRONT_TOLERANCE of its ``nearest``, the one
    closest to the pixel's centre. ``mapper`` (map, or _parallel) runs the parts.
    """
    def offsets(landed):
        among = np.flatnonzero(pixels[landed.cell])
        front = among[landed.z[among] <= nearest[landed.cell[among]] *
                      np.float32(1 + FRONT_TOLERANCE)]
        u, v = landed.u[front], landed.v[front]
        offset = ((u - np.floor(u) - np.float32(0.5)) ** 2 +
                  (v - np.floor(v) - np.float32(0.5)) ** 2)
        closest = np.full(nearest.size, np.inf, offset.dtype)
        np.minimum.at(closest, landed.cell[front], offset)
        return front, offset, closest

    fronts = list(mapper(offsets, parts))
    closest = functools.reduce(np.minimum, [f[2] for f in fronts])
    return [front[offset <= closest[landed.cell[front]]]
            for landed, (front, offset, _) in zip(parts, fronts)]


def register_raw(depth, depth_camera, depth_to_color, lr, threads=REGISTRATION_THREADS):
    """
    Register raw depth from its own camera into the LR grid ``lr`` of the colour camera.

    Every valid depth pixel is back-projected along its undistorted ray, moved into the colour
    camera's frame and projected (with the colour lens's distortion) into ``lr``, where the
    nearest surface wins (``splat``'s rule); then each LR pixel's value is re-sampled at the
    pixel's centre (``_refine_at_centres``). Only the pixels that the re-sampling leaves
    (beside holes and depth edges) need splat's choice among their samples, so the z-buffer
    runs first and the choice only there. The depth image's rows and columns whose rays
    cannot reach ``lr`` at any depth of the frame's range are skipped (``_reachable``). The
    work is split by rows into ``threads`` parts, run on threads; the result does not
    depend on the split.

    :param depth: (H, W) float32 metres (z along the depth camera's optical axis), NaN or 0 =
        invalid, on ``depth_camera``'s grid (distortion honoured).
    :param depth_to_color: Transform from the depth optical frame into the colour optical frame.
    :param lr: the LR grid (the colour camera resized, distortion kept).
    :return: (h, w) float32 depth along the colour camera's axis; NaN where no sample lands.
    """
    if depth.shape != depth_camera.shape:
        raise GeometryError(f'depth is {depth.shape[1]}x{depth.shape[0]} but its camera_info is '
                            f'for {depth_camera.width}x{depth_camera.height}')
    depth = np.asarray(depth, np.float32)
    with np.errstate(invalid='ignore'):
        valid = depth > 0  # NaN is not
    if not valid.any():
        return np.full(lr.shape, np.nan, np.float32)
    near, far, _, _ = cv2.minMaxLoc(depth, valid.view(np.uint8))
    (rows, columns), ((ax, ay, az), t) = _reachable(
        depth_camera, depth_to_color, lr, _power_of_two(near, math.floor),
        _power_of_two(far, math.ceil))
    color_z = np.full(depth.shape, np.nan, np.float32)  # each depth pixel's z in colour
    box_width = columns.stop - columns.start

    def land(part):  # rows of the box
        block = slice(rows.start + part.start, rows.start + part.stop), columns
        flat = slice(part.start * box_width, part.stop * box_width)
        z = np.where(valid[block], depth[block], np.float32(np.nan)).reshape(-1)
        z, u, v = _follow_rays(z, ((ax[flat], ay[flat], az[flat]), t), lr)
        color_z[block] = z.reshape(color_z[block].shape)
        landed = _land(u, v, z, lr.shape)
        return landed, _nearest(landed)

    parts = _parallel(land, _split(rows.stop - rows.start, threads))
    nearest = functools.reduce(np.fmin, [p[1] for p in parts])  # inf nowhere, NaN past
    coarse = nearest[:-1].reshape(lr.shape)
    coarse[np.isinf(coarse)] = np.nan
    out = np.empty(lr.shape, np.float32)
    refined = np.empty(lr.shape, bool)

    def refine(part):  # rows of the LR grid
        out[part], refined[part] = _refine_at_centres(
            coarse, color_z, depth_camera, depth_to_color, lr, part)

    _parallel(refine, _split(lr.height, threads))
    # The pixels the re-sampling left keep the value of their sample closest to the centre.
    left = np.append(np.isfinite(coarse) & ~refined, False)  # flat, and the slot past it
    landed = [p[0] for p in parts]
    for points, chosen in zip(landed, _closest_in_front(landed, nearest, left, _parallel)):
        out.reshape(-1)[points.cell[chosen]] = points.z[chosen]
    return out


def _split(count, parts):
    """Return ``parts`` slices (fewer when count is small) that cut range(count) evenly."""
    edges = np.linspace(0, count, min(parts, count) + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


@functools.lru_cache(maxsize=1)
def _pool():
    """Return the registration's thread pool (made on first use)."""
    return ThreadPoolExecutor(REGISTRATION_THREADS, thread_name_prefix='registration')


def _parallel(function, items):
    """Return [function(item) for item in items], run on the registration's threads."""
    if len(items) == 1:
        return [function(items[0])]
    return list(_pool().map(function, items))


def _power_of_two(value, rounding):
    """Return the power of two that ``rounding`` (math.floor or math.ceil) takes value to."""
    return 2.0 ** rounding(math.log2(value))


def _follow_rays(z, rays, target):
    """
    Follow ``rays`` (a ``_rays_moved`` pair, or part of one) to depth ``z`` and project.

    Return (z', u, v): the points' depth along ``target``'s axis and their pixel coordinates
    in ``target`` (NaN where z is NaN or the point is behind ``target``).
    """
    (ax, ay, az), t = rays
    with np.errstate(invalid='ignore', divide='ignore'):
        target_z = z * az + t[2]
        target_z = np.where(target_z > 0, target_z, np.float32(np.nan))
        u, v = (z * ax + t[0]) / target_z, (z * ay + t[1]) / target_z
    if target.distorted:
        u, v = target.pixels_of(u, v)
    return target_z, u, v


@functools.lru_cache(maxsize=8)
def _reachable(camera, transform, target, near, far):
    """
    Return (box, rays): the part of ``camera``'s image whose rays can land in ``target``.

    ``box`` is a (rows, columns) pair of slices holding every pixel whose ray, between depths
    ``near`` and ``far``, can project into ``target``'s image; ``rays`` are ``_rays_moved``'s
    for the box's pixels (flat, row by row). Along a ray the projection moves monotonically
    between its ends (unless the ray passes behind ``target``, which keeps the pixel), so the
    two ends decide. Distorted targets are tested against the bounding box of their pixels'
    undistorted rays, widened by a tenth. Cached: register_raw rounds the depth range
    outwards to powers of two, so a stream of frames reuses the box.
    """
    (ax, ay, az), t = _rays_moved(camera, transform, target)
    if target.distorted:
        box = target.undistorted_rays().reshape(-1, 2)
        low, high = np.nanmin(box, axis=0), np.nanmax(box, axis=0)
        low, high = low - (high - low) / 10, high + (high - low) / 10
    else:
        low, high = (-0.5, -0.5), (target.width - 0.5, target.height - 0.5)
    with np.errstate(invalid='ignore', divide='ignore'):
        ends = [(z * ax + t[0], z * ay + t[1], z * az + t[2]) for z in (near, far)]
        keep = (ends[0][2] <= 0) | (ends[1][2] <= 0)
        inside = True
        for axis in range(2):
            a, b = ends[0][axis] / ends[0][2], ends[1][axis] / ends[1][2]
            inside = inside & (np.maximum(a, b) > low[axis]) & (np.minimum(a, b) < high[axis])
    keep = (keep | inside).reshape(camera.shape)
    rows, columns = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    if rows.size == 0:
        rows = columns = np.zeros(1, np.intp)  # one pixel, which lands nowhere
    box = slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)
    rays = tuple(np.ascontiguousarray(a.reshape(camera.shape)[box]).reshape(-1)
                 for a in (ax, ay, az))
    return box, (rays, t)


@functools.lru_cache(maxsize=8)
def _rays_moved(camera, transform, target):
    """
    Return ((a_x, a_y, a_z), t): the point at depth z on a pixel's ray, moved, is z * a + t.

    a holds three flat float32 arrays (one value per pixel of ``camera``), moved by
    ``transform``.

    For a pinhole ``target`` a and t are multiplied by its K, so that (x/z, y/z) of the
    result are already its pixel coordinates; for a distorted one they stay in metres.
    Cached per camera, transform and target, so a frame costs a multiply-add per pixel and
    axis.
    """
    rays = camera.undistorted_rays().reshape(-1, 2).astype(np.float64)
    r = np.asarray(transform.rotation, np.float64).reshape(3, 3)
    t = np.asarray(transform.translation, np.float64)
    if not target.distorted:  # u z = K[0] . p, v z = K[1] . p; z stays the point's z
        k = target.matrix
        r, t = np.vstack([k[:2] @ r, r[2:]]), np.concatenate([k[:2] @ t, t[2:]])
    moved = tuple(np.ascontiguousarray(axis, np.float32) for axis in r[:, :2] @ rays.T + r[:, 2:])
    for axis in moved:
        axis.flags.writeable = False  # shared by every caller
    return moved, t.astype(np.float32)


def _refine_at_centres(coarse, color_z, depth_camera, depth_to_color, lr, rows):
    """
    Move each registered LR value to the surface point seen at the LR pixel's centre.

    The z-buffer's value comes from a sample somewhere in the LR pixel. The point at that
    depth on the pixel's centre ray is projected into the depth image, and the depth there is
    interpolated bilinearly from the four depth pixels around it when all four belong to one
    surface (within FRONT_TOLERANCE of the nearest of them); otherwise the pixel is left as
    it is. Nothing is averaged across a depth edge. ``color_z`` is each depth pixel's depth
    along the colour camera's axis (NaN where invalid): bilinear weights sum to one, so
    interpolating it equals interpolating the points. Every LR pixel of the slice ``rows`` is
    computed (NaN runs through), since most hold a value and gathering them would cost more.
    Return (the LR depth, a mask of the pixels re-sampled), both for ``rows``.
    """
    (ax, ay, az), t = _rays_moved(lr, depth_to_color.inverse(), depth_camera)
    flat = slice(rows.start * lr.width, rows.stop * lr.width)
    coarse = coarse[rows]
    _, u, v = _follow_rays(coarse.reshape(-1), ((ax[flat], ay[flat], az[flat]), t),
                           depth_camera)
    height, width = color_z.shape
    with np.errstate(invalid='ignore'):  # NaN coordinates are outside
        inside = (u >= 0) & (u < width - 1) & (v >= 0) & (v < height - 1)
        column = np.where(inside, u, 0).astype(np.intp)  # floor: non-negative
        row = np.where(inside, v, 0).astype(np.intp)
    u -= column
    v -= row
    top_left = row * width + column
    flat = color_z.reshape(-1)
    a, b = flat[top_left], flat[top_left + 1]
    c, d = flat[top_left + width], flat[top_left + width + 1]
    near = np.minimum(np.minimum(a, b), np.minimum(c, d))  # NaN when one is invalid
    far = np.maximum(np.maximum(a, b), np.maximum(c, d))
    with np.errstate(invalid='ignore'):
        refined = inside & (far <= near * np.float32(1 + FRONT_TOLERANCE))
    top, bottom = a + (b - a) * u, c + (d - c) * u
    out = np.where(refined, top + (bottom - top) * v, coarse.reshape(-1))
    return out.reshape(coarse.shape), refined.reshape(coarse.shape)
