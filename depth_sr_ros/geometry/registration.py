"""
Registration: a depth image brought onto the colour camera's LR grid.

- ``reduce_registered``: depth already in the colour camera's frame, at any other size
  (RealSense align_depth, Azure Kinect depth_to_rgb, depth_image_proc's register).
- ``register_raw``: depth in the depth camera's own frame: every depth pixel is back-projected
  through the depth camera's intrinsics and distortion, moved by the depth-to-colour extrinsic
  and projected into the colour camera's LR grid with a z-buffer, the nearest surface winning.
- ``splat``: the z-buffer itself, for any points (the scene renderer uses it).
- ``onto_lr_grid``: the route a depth image takes (one of ROUTES), as the node and the
  training's simulated rigs take it.

Both routes see the depth image two ways:

- as samples: an LR pixel that depth samples land in takes one of them (the median of a
  registered pixel's samples; the nearest surface of a raw pixel's, re-sampled at the pixel's
  centre), never an average of two surfaces. This is the rule where the depth is finer than
  the grid.
- as a surface (``mesh_depth``): neighbouring depth samples form triangles. A triangle
  whose depths differ by more than MESH_MAX_JUMP of its nearest depth spans two surfaces:
  its points take the depth of their nearest sample, so the edge falls halfway between the
  samples and no depth lies between the surfaces. An LR pixel that no sample lands in,
  because the depth is coarser than the grid (a ToF camera under a 720p colour camera) or
  sampled unevenly, takes the depth of the triangle its centre sees. Where the depth is
  coarser than the grid, a registered pixel takes the surface's depth at its centre even when
  one sample landed in it, so the output has no pattern of sample positions. Real holes stay
  holes: a triangle with an invalid corner, a part of the colour view that the depth camera
  does not see, or that it sees hidden behind a nearer surface, gives nothing.
"""

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import functools
import math
import os

import cv2
from depth_sr_ros.geometry.camera import GeometryError
from depth_sr_ros.preprocessing import valid_depth_mask
import numpy as np

# A registered LR pixel is valid when at least this share of its depth samples is.
MIN_VALID_SHARE = 0.5
# Raw registration: samples within this share of the nearest depth in an LR pixel belong to
# the nearest surface (a slanted surface spans a few per cent of its depth across a pixel).
FRONT_TOLERANCE = 0.03
# The mesh: a triangle of neighbouring depth samples whose farthest corner lies more than this
# share beyond its nearest spans two surfaces and is not interpolated. A surface slanted at 80
# degrees changes its depth by tan(80) / f = 2.7 % per sample of a ToF camera of focal length
# f = 210 px, and sensor noise adds about 1 %; the edges between the objects that matter to a
# robot are jumps of 10 % and more.
MESH_MAX_JUMP = 0.05
# A raw LR pixel that no sample lands in is ray-cast into the mesh from the depths around it:
# so many fixed-point steps, accepted when the last one moves the depth by less than this share.
RAY_CAST_STEPS = 4
RAY_CAST_TOLERANCE = 0.005
# Raw registration splits its per-point and per-pixel work into this many parts, run on as
# many threads (numpy releases the GIL inside its loops). On the 2-core development VM two
# threads save 10-25 % (depth_sr_benchmark --registration shows both): numpy's passes are
# bound by memory more than by arithmetic there.
REGISTRATION_THREADS = min(4, os.cpu_count() or 1)


# How a depth image reaches the LR grid: already on it (the colour camera's frame and the LR
# size), registered to the colour camera at another size, or raw in the depth camera's frame.
ROUTES = ('lr_grid', 'registered', 'raw')


def onto_lr_grid(depth, route, depth_camera, lr, depth_to_color=None, offset=(0.0, 0.0)):
    """
    Return ``depth`` (metres, NaN = invalid) on the LR grid ``lr`` by ``route`` (ROUTES).

    :param depth_camera: the depth's camera (ignored on the 'lr_grid' route, whose depth is
        on ``lr``).
    :param depth_to_color: the extrinsic of the 'raw' route.
    :param offset: (right, down) LR pixels by which the depth sits off the colour image; the
        registration takes it off (the LR grid's principal point moved), so no depth value is
        resampled.
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {route!r}")
    moved = lr.moved(-offset[0], -offset[1]) if any(offset) else lr
    if route == 'lr_grid':
        return reduce_registered(depth, lr, moved) if any(offset) else depth
    if route == 'registered':
        return reduce_registered(depth, depth_camera, moved)
    if depth_to_color is None:
        raise ValueError("the 'raw' route needs the depth-to-colour extrinsic")
    return register_raw(depth, depth_camera, depth_to_color, moved)


def reduce_registered(depth, depth_camera, lr, min_valid_share=MIN_VALID_SHARE):
    """
    Bring depth that is registered to the colour camera onto the LR grid ``lr``.

    Every depth pixel lands in the LR pixel that contains its centre (through both sets of
    intrinsics; both images share the colour camera's lens, so no distortion is involved). An
    LR pixel whose samples are at least ``min_valid_share`` valid takes their lower median, one
    of the samples: never an average of a foreground and a background surface. Others stay
    invalid (NaN). Integer block ratios take a fast block path. Where the depth is coarser
    than ``lr`` (less than one sample per LR pixel), each LR pixel takes the depth mesh's value
    at its centre, and its sample only where the mesh has none (beside a hole); LR pixels that no
    sample lands in take the mesh's value at any ratio (see the module's docstring).

    :param depth: (H, W) float32 metres, NaN = invalid, on ``depth_camera``'s grid.
    :return: (h, w) float32 metres on ``lr``'s grid.
    """
    k_d, k_l = depth_camera.matrix, lr.matrix
    sx, sy = k_l[0, 0] / k_d[0, 0], k_l[1, 1] / k_d[1, 1]
    # LR coordinate of a depth pixel centre: x_l = sx * (u - cx_d) + cx_l (same camera).
    ox, oy = k_l[0, 2] - sx * k_d[0, 2], k_l[1, 2] - sy * k_d[1, 2]
    # The LR pixel whose centre is nearest; a centre halfway between two lands in the right or
    # lower one, as in register_raw (_land), whatever the parity (np.rint would alternate).
    u = np.floor(sx * np.arange(depth.shape[1]) + ox + 0.5).astype(np.int64)
    v = np.floor(sy * np.arange(depth.shape[0]) + oy + 0.5).astype(np.int64)
    block = round(1 / sx) if sx > 0 else 0
    shifts = (_block_shift(u, block), _block_shift(v, block)) if block >= 1 else (None, None)
    if None not in shifts and abs(1 / sx - block) < 1e-6 and abs(1 / sy - block) < 1e-6:
        out, landed = _reduce_blocks(depth, block, shifts, lr.shape, min_valid_share)
    else:
        cols, rows = np.meshgrid(u, v)
        out, landed = _reduce_cells(depth.ravel(), rows.ravel(), cols.ravel(), lr.shape,
                                    min_valid_share)
    mesh_first = sx * sy > 1  # fewer samples than LR pixels
    fill = np.ones(lr.shape, bool) if mesh_first else landed == 0
    if fill.any():
        # The LR pixel centres that take the mesh, in depth pixel coordinates.
        rows, cols = np.nonzero(fill)
        measured = np.where(valid_depth_mask(depth), depth, np.float32(np.nan))
        surface = mesh_depth(measured.astype(np.float32), (cols - ox) / sx, (rows - oy) / sy)
        if mesh_first:
            surface = np.where(np.isfinite(surface), surface, out[fill])
        out[fill] = surface
    return out


def mesh_depth(values, u, v, max_jump=MESH_MAX_JUMP, across_edges=True):
    """
    Return the depth mesh's value at pixel coordinates (u, v) of an image; NaN where it has none.

    Each square of four neighbouring pixel centres is cut along its rising diagonal into two
    triangles; a point takes the linear interpolation of the three corners of its triangle.
    A triangle whose farthest corner lies more than ``max_jump`` of the nearest beyond it
    spans two surfaces: a point in it takes the value of its nearest corner, so the edge
    falls halfway between the samples and nothing is ever averaged across it. A triangle with
    an invalid (NaN) corner gives NaN (a hole stays a hole), as do points outside the image's
    centres.

    :param values: (H, W) float32, NaN = invalid (depth, or any quantity that follows it).
    :param u, v: (N,) column and row coordinates; pixel centres are at integers.
    :param across_edges: False: a point in a triangle that spans two surfaces gives NaN.
    :return: (N,) float32.
    """
    height, width = values.shape
    u, v = np.asarray(u, np.float32), np.asarray(v, np.float32)
    if height < 2 or width < 2:
        return np.full(u.shape, np.nan, np.float32)
    with np.errstate(invalid='ignore'):  # NaN coordinates are outside
        inside = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    column = np.minimum(np.where(inside, u, 0).astype(np.intp), width - 2)  # floor: u >= 0
    row = np.minimum(np.where(inside, v, 0).astype(np.intp), height - 2)
    fu, fv = np.where(inside, u - column, 0), np.where(inside, v - row, 0)
    flat = values.reshape(-1)
    top_left = row * width + column
    a, b = flat[top_left], flat[top_left + 1]
    c, d = flat[top_left + width], flat[top_left + width + 1]
    lower = fu + fv <= 1  # the triangle (a, b, c); else (b, c, d)
    first = np.where(lower, a, d)  # the corner that is not on the diagonal
    near = np.fmin(first, np.fmin(b, c))
    far = np.fmax(first, np.fmax(b, c))
    interpolated = np.where(lower, a + (b - a) * fu + (c - a) * fv,
                            d + (c - d) * (1 - fu) + (b - d) * (1 - fv))
    # Between two surfaces, the corner nearest to the point (always one of its triangle's).
    nearest_corner = flat[top_left + np.rint(fv).astype(np.intp) * width
                          + np.rint(fu).astype(np.intp)]
    with np.errstate(invalid='ignore'):
        measured = inside & np.isfinite(first) & np.isfinite(b) & np.isfinite(c)
        one_surface = far <= near * np.float32(1 + max_jump)
    out = np.where(one_surface, interpolated, nearest_corner if across_edges else np.nan)
    return np.where(measured, out, np.float32(np.nan)).astype(np.float32)


def _block_shift(cells, block):
    """
    Return d when depth pixel i lands in LR pixel (i + d) // block for every i, else None.

    ``cells``: the LR pixel each depth column (or row) lands in. An integer ratio lands whole
    blocks of ``block`` depth pixels in one LR pixel, at any phase: the grid's principal point,
    which the alignment moves, only shifts the blocks by whole depth pixels.
    """
    first = int(cells[0])
    in_first = int(np.count_nonzero(cells == first))
    shift = first * block + (block - in_first) % block
    if in_first > block or not np.array_equal(cells, (np.arange(cells.size) + shift) // block):
        return None
    return shift


def _reduce_blocks(depth, block, shifts, shape, min_valid_share):
    """
    reduce_registered where LR pixels are block x block squares of depth pixels.

    ``shifts`` (dx, dy): depth pixel (x, y) lands in LR pixel ((x + dx) // block, (y + dy) //
    block) (_block_shift). Blocks at the image's borders may hold fewer depth pixels, or none.
    Returns the lower median of each block's valid samples, and (h, w) how many samples landed
    in each, as _reduce_cells.
    """
    h, w = shape
    dx, dy = shifts
    padded = np.full((h * block, w * block), np.nan, np.float32)
    # Depth pixel (x, y) goes to padded pixel (x + dx, y + dy), where that is on the grid.
    x0, y0 = max(0, dx), max(0, dy)
    x1, y1 = min(w * block, depth.shape[1] + dx), min(h * block, depth.shape[0] + dy)
    if x1 > x0 and y1 > y0:
        padded[y0:y1, x0:x1] = depth[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    # The depth pixels in each block: the overlap of its rows and of its columns with them.
    total = np.outer(_overlaps(y0, y1, h, block), _overlaps(x0, x1, w, block))
    blocks = padded.reshape(h, block, w, block).transpose(0, 2, 1, 3).reshape(h, w, -1)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(blocks) & (blocks > 0)
    count = valid.sum(axis=2)
    ordered = np.sort(np.where(valid, blocks, np.inf), axis=2)  # valid samples first
    median = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, :, None] // 2, 2)[:, :, 0]
    out = median.astype(np.float32)
    out[(count < min_valid_share * total) | (count == 0)] = np.nan
    return out, total


def _overlaps(start, stop, count, block):
    """Return how much of [start, stop) each of ``count`` runs of ``block`` pixels covers."""
    first = np.arange(count) * block
    return np.clip(np.minimum(first + block, stop) - np.maximum(first, start), 0, None)


def _reduce_cells(values, rows, cols, shape, min_valid_share):
    """
    Return the lower median of the valid values per LR cell, for any sample-to-cell assignment.

    Also return (h, w) how many samples, valid or not, landed in each cell.
    """
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
    return out.reshape(h, w), total.reshape(h, w)


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
    cannot reach ``lr`` at any depth of the frame's range are skipped (``_reachable``). LR
    pixels that no sample reaches, or whose samples are all of a surface behind the one the
    pixels around show (a depth camera coarser than the LR grid), are ray-cast into the depth
    mesh (``_ray_cast_gaps``). The work is split by rows into ``threads`` parts, run on
    threads; the result does not depend on the split.

    :param depth: (H, W) float32 metres (z along the depth camera's optical axis), NaN, inf or
        0 = invalid, on ``depth_camera``'s grid (distortion honoured), at least 2x2.
    :param depth_to_color: Transform from the depth optical frame into the colour optical frame.
    :param lr: the LR grid (the colour camera resized, distortion kept).
    :return: (h, w) float32 depth along the colour camera's axis; NaN where neither a
        sample nor the mesh gives one.
    """
    if depth.shape != depth_camera.shape:
        raise GeometryError(f'depth is {depth.shape[1]}x{depth.shape[0]} but its camera_info is '
                            f'for {depth_camera.width}x{depth_camera.height}')
    if min(depth.shape) < 2:
        raise GeometryError(f'a {depth.shape[1]}x{depth.shape[0]} depth image has no mesh to '
                            'register: it needs at least 2 rows and 2 columns')
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) & (depth > 0)  # NaN and inf are not
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
    _ray_cast_gaps(out, color_z, depth_camera, depth_to_color, lr)
    return out


def _ray_cast_gaps(out, color_z, depth_camera, depth_to_color, lr):
    """
    Ray-cast into the depth mesh where the samples leave an LR pixel empty or hidden.

    Two kinds of LR pixel of ``out`` are ray-cast (``_ray_cast``) from the registered depths
    around them, within the spacing of the depth samples on the LR grid:

    - where there are fewer depth samples than LR pixels, a pixel whose value lies more than
      FRONT_TOLERANCE behind the nearest depth around: the near surface's samples can miss it
      while background that the depth camera sees beside the near surface lands there. It
      takes the nearer surface when its ray meets the inside of one (not the mesh's edge
      between the two, which would move the edge from where the z-buffer put it);
    - a gap, that no sample reached: the nearest depth around is tried first, then the
      farthest, so the nearest surface wins as in the z-buffer.

    ``out`` is filled in place.
    """
    gaps = ~np.isfinite(out)
    if gaps.all():
        return
    # Neighbouring depth samples lie about this many LR pixels apart, across and down (pixels
    # need not be square: an output_size of another aspect, a depth camera with fx != fy).
    across, down = (lr.matrix[i, i] / depth_camera.matrix[i, i] for i in (0, 1))
    kernel = np.ones((2 * max(1, math.ceil(down)) + 1, 2 * max(1, math.ceil(across)) + 1),
                     np.uint8)
    nearest = cv2.erode(np.where(gaps, np.float32(np.inf), out), kernel,
                        borderType=cv2.BORDER_REPLICATE)
    cast = functools.partial(_ray_cast, color_z=color_z, depth_camera=depth_camera,
                             depth_to_color=depth_to_color, lr=lr)
    if max(across, down) > 1:  # denser samples reach every pixel of a near surface themselves
        with np.errstate(invalid='ignore'):
            rows, columns = np.nonzero(~gaps & (nearest < out * np.float32(1 - FRONT_TOLERANCE)))
        found = cast(rows, columns, [nearest[rows, columns]], across_edges=False)
        with np.errstate(invalid='ignore'):
            nearer = found < out[rows, columns] * np.float32(1 - FRONT_TOLERANCE)
        out[rows[nearer], columns[nearer]] = found[nearer]
    farthest = cv2.dilate(np.where(gaps, np.float32(-np.inf), out), kernel,
                          borderType=cv2.BORDER_REPLICATE)
    rows, columns = np.nonzero(gaps & np.isfinite(nearest))
    out[rows, columns] = cast(rows, columns, [nearest[rows, columns], farthest[rows, columns]])


def _ray_cast(rows, columns, seeds, color_z, depth_camera, depth_to_color, lr,
              across_edges=True):
    """
    Return the depth of the mesh that the rays of LR pixels (rows, columns) meet; NaN = none.

    A pixel's ray is followed to a seed depth, projected into the depth image and given the
    mesh's depth there (``color_z``: each depth pixel's depth along the colour camera's
    axis); repeated RAY_CAST_STEPS times, this finds where the ray meets the surface. A pixel
    takes the depth only when the steps settle (RAY_CAST_TOLERANCE): a ray through a part of
    the scene the depth camera does not see meets no consistent surface. Each of ``seeds``
    (arrays of depths, one per pixel) is tried in turn on the pixels still without one.
    ``across_edges`` False: a ray must meet the inside of a surface, not the mesh between two
    (mesh_depth's edge rule, which puts the edge halfway between the samples).
    """
    found = np.full(rows.size, np.nan, np.float32)
    if rows.size == 0:
        return found
    flat = rows * lr.width + columns
    (ax, ay, az), t = _rays_moved(lr, depth_to_color.inverse(), depth_camera)
    ax, ay, az = ax[flat], ay[flat], az[flat]
    for seed in seeds:
        todo = np.flatnonzero(np.isnan(found))
        z = seed[todo]
        rays = ((ax[todo], ay[todo], az[todo]), t)
        for _ in range(RAY_CAST_STEPS):
            _, u, v = _follow_rays(z, rays, depth_camera)
            z, before = mesh_depth(color_z, u, v, across_edges=across_edges), z
        with np.errstate(invalid='ignore'):
            settled = np.abs(z - before) <= np.float32(RAY_CAST_TOLERANCE) * before
        found[todo] = np.where(settled, z, np.float32(np.nan))
    return found


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
