"""
Camera geometry for real RGB-D rigs, in numpy with no ROS import.

Intrinsics with lens distortion, rigid transforms, and the registration of a depth image into
the colour camera.

The node's output is depth registered to the colour camera, on the colour camera's pixel grid
(the *output grid*). The network works one scale step below it, on the *LR grid*. A depth image
reaches the LR grid in one of three ways (``plan_route``):

- ``lr_grid``: it is already there (same frame as the colour, size = LR grid);
- ``registered``: same frame as the colour, any other size (RealSense align_depth, Azure
  Kinect depth_to_rgb, depth_image_proc's register): each LR pixel takes the median of the
  valid depth samples that fall into it, as one of those samples, so no value mixes two
  surfaces; a pixel whose samples are mostly invalid stays invalid (``reduce_registered``);
- ``raw``: the depth camera's own frame: every depth pixel is back-projected through the depth
  camera's intrinsics and distortion, moved by the depth-to-colour extrinsic and projected into
  the colour camera's LR grid with a z-buffer, the nearest surface winning; LR pixels that no
  sample reaches stay invalid (``register_raw``).

Pixel coordinates follow ROS (REP 104 / image_pipeline): the centre of pixel (u, v) is at
(u, v), and resizing keeps pixel centres in place (``Camera.resized``).
"""

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import functools
import math
import os

import cv2
import numpy as np

# Distortion models of sensor_msgs/CameraInfo that this module honours.
PLUMB_BOB, RATIONAL, EQUIDISTANT = 'plumb_bob', 'rational_polynomial', 'equidistant'
DISTORTION_MODELS = (PLUMB_BOB, RATIONAL, EQUIDISTANT)
ROUTES = ('lr_grid', 'registered', 'raw')
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


class GeometryError(ValueError):
    """Camera data that cannot be used (with the reason)."""


@dataclasses.dataclass(frozen=True)
class Camera:
    """A camera's image size, intrinsic matrix and lens distortion (from a CameraInfo)."""

    width: int
    height: int
    k: tuple  # 3x3 row-major, 9 floats
    d: tuple = ()  # distortion coefficients of ``model``
    model: str = PLUMB_BOB

    def __post_init__(self):
        """Check the numbers: positive size and focal lengths, finite K and D, known model."""
        k = np.asarray(self.k, np.float64)
        if self.width <= 0 or self.height <= 0:
            raise GeometryError(f'camera size {self.width}x{self.height} is empty')
        if k.shape != (9,) or not np.isfinite(k).all():
            raise GeometryError('camera K is not 9 finite numbers')
        if k[0] <= 0 or k[4] <= 0:
            raise GeometryError(f'camera K has non-positive focal length ({k[0]}, {k[4]})')
        if not np.isfinite(np.asarray(self.d, np.float64)).all():
            raise GeometryError('camera D has non-finite coefficients')
        if self.distorted and self.model not in DISTORTION_MODELS:
            raise GeometryError(f"distortion model '{self.model}' is not supported "
                                f'(supported: {", ".join(DISTORTION_MODELS)})')

    @property
    def matrix(self):
        """Return K as a 3x3 float64 array."""
        return np.asarray(self.k, np.float64).reshape(3, 3)

    @property
    def distorted(self):
        """Return True unless the camera is a pinhole (equidistant is never one)."""
        return self.model == EQUIDISTANT or any(c != 0 for c in self.d)

    @property
    def shape(self):
        """Return (height, width)."""
        return self.height, self.width

    def resized(self, width, height):
        """
        Return the same camera resampled to width x height (pixel centres keep their place).

        Distortion coefficients act on normalised coordinates, so they stay as they are.
        """
        sx, sy = width / self.width, height / self.height
        k = self.matrix.copy()
        k[0, 0] *= sx
        k[0, 1] *= sx
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 1] *= sy
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        return dataclasses.replace(self, width=int(width), height=int(height),
                                   k=tuple(k.ravel()))

    def padded(self, width, height):
        """Return the camera with its image grown at the bottom and right (K unchanged)."""
        return dataclasses.replace(self, width=int(width), height=int(height))

    def undistorted_rays(self):
        """
        Return (H, W, 2) normalised image coordinates (x/z, y/z) of every pixel centre.

        Cached per camera (the dataclass is frozen and hashable), so a stream of frames with
        the same camera_info computes them once.
        """
        return _rays(self)

    def project(self, points):
        """
        Return the (N, 2) pixel coordinates of (N, 3) points in this camera's optical frame.

        Lens distortion is applied, so the result addresses the camera's own (distorted) image.
        Points at z <= 0 give NaN.
        """
        points = np.asarray(points).reshape(-1, 3)
        z = points[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            x, y = points[:, 0] / z, points[:, 1] / z
        behind = ~(z > 0)
        x[behind] = np.nan
        y[behind] = np.nan
        return np.stack(self.pixels_of(x, y), axis=1)

    def pixels_of(self, x, y):
        """
        Return the pixel coordinates (u, v) of normalised image coordinates (x/z, y/z).

        Lens distortion is applied. Beyond the radius where the lens model stops growing it
        folds back: such points would land inside the image as ghosts, so they give NaN. The
        arrays may be modified in place.
        """
        if self.distorted:
            with np.errstate(invalid='ignore'):
                beyond = x * x + y * y > _valid_radius(self) ** 2
            x[beyond] = np.nan
            y[beyond] = np.nan
            x, y = _distort(x, y, self.d, self.model)
        k = self.matrix.astype(x.dtype)
        return k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]


def pinhole_camera(width, height, focal):
    """Return an undistorted camera with the principal point at the image centre."""
    return Camera(width, height, (focal, 0.0, (width - 1) / 2.0, 0.0, focal,
                                  (height - 1) / 2.0, 0.0, 0.0, 1.0))


def _distort(x, y, d, model):
    """Apply lens distortion to normalised coordinates (the model of OpenCV and ROS)."""
    d = list(d)
    if model == EQUIDISTANT:
        k1, k2, k3, k4 = (d + [0.0] * 4)[:4]
        r = np.hypot(x, y)
        theta = np.arctan(r)
        theta_d = theta * (1 + k1 * theta ** 2 + k2 * theta ** 4 + k3 * theta ** 6
                           + k4 * theta ** 8)
        with np.errstate(divide='ignore', invalid='ignore'):
            factor = np.where(r > 1e-12, theta_d / r, 1.0)
        return x * factor, y * factor
    k1, k2, p1, p2, k3, k4, k5, k6 = (d + [0.0] * 8)[:8]
    r2 = x * x + y * y
    radial = ((1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3)
              / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _undistort(xd, yd, d, model, iterations=30):
    """
    Invert _distort by Newton's method on each point (numerical 2x2 Jacobian).

    Converges to below 1e-9 in a few steps for the lenses of depth cameras; points where the
    model folds over (far outside the field of view) come out NaN.
    """
    x, y = xd.copy(), yd.copy()
    eps = 1e-7
    for _ in range(iterations):
        fx, fy = _distort(x, y, d, model)
        rx, ry = fx - xd, fy - yd
        if max(np.nanmax(np.abs(rx)), np.nanmax(np.abs(ry))) < 1e-10:
            break
        ax, ay = _distort(x + eps, y, d, model)
        bx, by = _distort(x, y + eps, d, model)
        j11, j21 = (ax - fx) / eps, (ay - fy) / eps
        j12, j22 = (bx - fx) / eps, (by - fy) / eps
        det = j11 * j22 - j12 * j21
        with np.errstate(divide='ignore', invalid='ignore'):
            x = x - (j22 * rx - j12 * ry) / det
            y = y - (-j21 * rx + j11 * ry) / det
    fx, fy = _distort(x, y, d, model)
    bad = ~(np.hypot(fx - xd, fy - yd) < 1e-6)
    x[bad] = np.nan
    y[bad] = np.nan
    return x, y


@functools.lru_cache(maxsize=16)
def _valid_radius(camera, limit=20.0, steps=20000):
    """
    Return the undistorted radius (x/z) up to which the camera's distortion keeps growing.

    Radial polynomials turn back beyond some radius; a point farther out would be drawn back
    into the image. Searched once per camera on a fine grid up to ``limit`` (87 degrees).
    """
    r = np.linspace(0.0, limit, steps)
    xd, _ = _distort(r, np.zeros_like(r), camera.d, camera.model)
    falling = np.flatnonzero(np.diff(xd) <= 0)
    return float(r[falling[0]]) if falling.size else limit


@functools.lru_cache(maxsize=8)
def _rays(camera):
    """Return the (H, W, 2) read-only undistorted rays of a camera (cached, see its caller)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].reshape(2, -1).astype(np.float64)
    k = camera.matrix
    x = (u - k[0, 2] - k[0, 1] / k[1, 1] * (v - k[1, 2])) / k[0, 0]
    y = (v - k[1, 2]) / k[1, 1]
    if camera.distorted:
        x, y = _undistort(x, y, camera.d, camera.model)
    rays = np.stack([x, y], axis=1).reshape(camera.height, camera.width, 2).astype(np.float32)
    rays.flags.writeable = False  # shared by every caller
    return rays


@dataclasses.dataclass(frozen=True)
class Transform:
    """A rigid transform p' = R p + t (R 3x3 row-major, t in metres)."""

    rotation: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    translation: tuple = (0.0, 0.0, 0.0)

    @classmethod
    def from_xyz_quaternion(cls, values):
        """Build from [x, y, z, qx, qy, qz, qw] (the order of geometry_msgs and tf2)."""
        values = [float(v) for v in values]
        if len(values) != 7 or not all(math.isfinite(v) for v in values):
            raise GeometryError('a transform needs 7 finite numbers [x, y, z, qx, qy, qz, qw], '
                                f'got {values}')
        x, y, z, qx, qy, qz, qw = values
        norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
        if norm < 1e-9:
            raise GeometryError('the quaternion [qx, qy, qz, qw] is zero')
        qx, qy, qz, qw = qx / norm, qy / norm, qz / norm, qw / norm
        rotation = (
            1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw),
            2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw),
            2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy))
        return cls(rotation, (x, y, z))

    def to_xyz_quaternion(self):
        """Return [x, y, z, qx, qy, qz, qw] (Shepperd's method: exact at 180 degrees too)."""
        r = np.asarray(self.rotation, np.float64).reshape(3, 3)
        trace = r[0, 0] + r[1, 1] + r[2, 2]
        if trace > max(r[0, 0], r[1, 1], r[2, 2]):
            w = math.sqrt(1 + trace) * 2
            q = ((r[2, 1] - r[1, 2]) / w, (r[0, 2] - r[2, 0]) / w, (r[1, 0] - r[0, 1]) / w,
                 w / 4)
        elif r[0, 0] >= r[1, 1] and r[0, 0] >= r[2, 2]:
            w = math.sqrt(1 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
            q = (w / 4, (r[0, 1] + r[1, 0]) / w, (r[0, 2] + r[2, 0]) / w,
                 (r[2, 1] - r[1, 2]) / w)
        elif r[1, 1] >= r[2, 2]:
            w = math.sqrt(1 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
            q = ((r[0, 1] + r[1, 0]) / w, w / 4, (r[1, 2] + r[2, 1]) / w,
                 (r[0, 2] - r[2, 0]) / w)
        else:
            w = math.sqrt(1 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
            q = ((r[0, 2] + r[2, 0]) / w, (r[1, 2] + r[2, 1]) / w, w / 4,
                 (r[1, 0] - r[0, 1]) / w)
        if q[3] < 0:
            q = tuple(-v for v in q)
        return [float(v) for v in self.translation] + [float(v) for v in q]

    @property
    def is_identity(self):
        """Return True for no rotation and no translation."""
        return self == Transform()

    def apply(self, points):
        """Return (N, 3) points moved by the transform."""
        r = np.asarray(self.rotation, np.float64).reshape(3, 3)
        return np.asarray(points, np.float64) @ r.T + np.asarray(self.translation)

    def then(self, other):
        """Return the transform that applies this one, then ``other``."""
        r1 = np.asarray(self.rotation, np.float64).reshape(3, 3)
        r2 = np.asarray(other.rotation, np.float64).reshape(3, 3)
        t = r2 @ np.asarray(self.translation) + np.asarray(other.translation)
        return Transform(tuple((r2 @ r1).ravel()), tuple(t))

    def inverse(self):
        """Return the transform that undoes this one."""
        r = np.asarray(self.rotation, np.float64).reshape(3, 3)
        return Transform(tuple(r.T.ravel()), tuple(-(r.T @ np.asarray(self.translation))))


@dataclasses.dataclass(frozen=True)
class Grids:
    """
    The output grid and the LR grid for one colour camera and scale.

    ``output`` is the colour camera, optionally resized (``output_size``). When its size is not
    a multiple of the scale, the network's grid is ``padded`` (the output grid grown at the
    bottom and right to the next multiple; K unchanged) and the result is cropped back, so the
    published image and camera_info are exactly the output grid. ``lr`` is ``padded`` / scale.
    """

    output: Camera
    padded: Camera
    lr: Camera
    scale: int


def plan_grids(color, scale, output_size=None):
    """
    Return the Grids for colour camera ``color`` at ``scale``.

    :param output_size: (width, height) to publish instead of the colour's own size (the colour
        image is shrunk to it and K scaled with it); None or (0, 0): the colour's size.
    """
    output = color
    if output_size and all(output_size):
        width, height = (int(v) for v in output_size)
        if width < scale or height < scale:
            raise GeometryError(f'output size {width}x{height} is smaller than the scale '
                                f'{scale}')
        output = color.resized(width, height)
    padded = output.padded(-(-output.width // scale) * scale, -(-output.height // scale) * scale)
    lr = padded.resized(padded.width // scale, padded.height // scale)
    return Grids(output, padded, lr, int(scale))


def plan_route(depth_frame, color_frame, depth_shape, grids):
    """
    Return the route ('lr_grid', 'registered' or 'raw') by which a depth image reaches the LR grid.

    An empty frame_id counts as the colour's (the player and some bags leave it empty).
    """
    same_frame = not depth_frame or not color_frame or depth_frame == color_frame
    if not same_frame:
        return 'raw'
    if tuple(depth_shape[:2]) == grids.lr.shape:
        return 'lr_grid'
    return 'registered'


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


def coverage_advice(depth_shape, grids, lr_depth, route):
    """
    Return one sentence on what the sensor gives the model, or '' for the plain LR-grid route.

    It says how many depth samples land per LR pixel, the scale whose LR grid would match the
    sensor, and when most LR pixels stay empty.
    """
    if route == 'lr_grid':
        return ''
    samples = depth_shape[0] * depth_shape[1]
    cells = grids.lr.width * grids.lr.height
    per_pixel = samples / cells
    sentence = (f'{depth_shape[1]}x{depth_shape[0]} depth lands about {per_pixel:.1f} samples '
                f'per LR pixel of {grids.lr.width}x{grids.lr.height} ({route} route)')
    matching = grids.scale / math.sqrt(per_pixel) if per_pixel > 0 else grids.scale
    better = [s for s in (2, 4, 8, 16) if s != grids.scale]
    closest = min(better, key=lambda s: abs(math.log(s / matching)))
    article = 'an' if closest == 8 else 'a'
    if per_pixel >= 2.5 and closest < grids.scale:
        sentence += f": {article} {closest}x model would use more of the sensor's resolution"
    elif per_pixel < 1.0 and closest > grids.scale:
        sentence += (f': {article} {closest}x model would suit the sensor better (LR pixels '
                     'that no depth sample reaches stay invalid)')
    empty = float(np.mean(~np.isfinite(lr_depth)))
    if empty > 0.5:
        sentence += (f'; {empty:.0%} of the LR pixels get no depth (is the depth camera '
                     'looking where the colour camera looks?)')
    return sentence


def crop_to_output(hr, grids):
    """Return the network's padded HR result cropped to the output grid."""
    return hr[:grids.output.height, :grids.output.width]


def resize_color(color, grids):
    """Return the colour image on the padded output grid (shrunk, then edge-padded)."""
    out = grids.output
    if color.shape[:2] != out.shape:
        color = cv2.resize(color, (out.width, out.height), interpolation=cv2.INTER_AREA)
    pad_rows, pad_cols = grids.padded.height - out.height, grids.padded.width - out.width
    if pad_rows or pad_cols:
        color = cv2.copyMakeBorder(color, 0, pad_rows, 0, pad_cols, cv2.BORDER_REPLICATE)
    return color
