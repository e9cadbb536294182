"""
Camera models: a camera's size, intrinsic matrix and lens distortion, as a CameraInfo gives them.

The distortion models are those of sensor_msgs/CameraInfo (OpenCV's): plumb_bob,
rational_polynomial and equidistant. Pixel centres follow ROS: the centre of pixel (u, v) is
at (u, v).
"""

import dataclasses
import functools
import math

import numpy as np

# Distortion models of sensor_msgs/CameraInfo that this module honours.
PLUMB_BOB, RATIONAL, EQUIDISTANT = 'plumb_bob', 'rational_polynomial', 'equidistant'
DISTORTION_MODELS = (PLUMB_BOB, RATIONAL, EQUIDISTANT)


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
        if len(self.d) > 14:
            raise GeometryError(f'camera D has {len(self.d)} coefficients; the models of '
                                'OpenCV have at most 14')
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
        k = to_grid(self.matrix, width / self.width, height / self.height)
        return dataclasses.replace(self, width=int(width), height=int(height),
                                   k=tuple(k.ravel()))

    def moved(self, dx, dy):
        """Return the camera whose image is moved: every point lands dx right and dy lower."""
        k = self.matrix.copy()
        k[0, 2] += dx
        k[1, 2] += dy
        return dataclasses.replace(self, k=tuple(k.ravel()))

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

    def reach(self):
        """
        Return the distorted radius (x/z) out to which the lens maps rays one to one.

        Beyond it the model folds back (_valid_radius), and the image's pixels there have no
        ray; inf without distortion or a fold.
        """
        if not self.distorted:
            return math.inf
        radius = _valid_radius(self)
        if radius >= _FOLD_SEARCH_LIMIT:
            return math.inf
        distorted, _ = _distort(np.array([radius]), np.zeros(1), self.d, self.model)
        return float(distorted[0])

    def pixels_of(self, x, y):
        """
        Return the pixel coordinates (u, v) of normalised image coordinates (x/z, y/z).

        Lens distortion is applied. Beyond the radius where the lens model stops growing it
        folds back: such points would land inside the image as ghosts, so they give NaN. The
        arrays may be modified in place.
        """
        if self.distorted:
            _drop_beyond_fold(self, x, y)
            x, y = _distort(x, y, self.d, self.model)
        k = self.matrix.astype(x.dtype)
        return k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]


def to_grid(matrix, sx, sy, ox=0.0, oy=0.0):
    """
    Return a K (3x3) or P (3x4) taken to a grid cut at (ox, oy) and resampled by (sx, sy).

    Pixel centres keep their place: x' = (x - ox + 0.5) * sx - 0.5, y' likewise. The map
    that changes nothing returns the matrix unchanged.
    """
    m = np.array(matrix, np.float64)
    if (sx, sy, ox, oy) == (1, 1, 0, 0):
        return m
    w = m[2].copy()  # the third row: the 1 of a pixel's homogeneous coordinates
    m[0] = (m[0] - (ox - 0.5) * w) * sx - 0.5 * w
    m[1] = (m[1] - (oy - 0.5) * w) * sy - 0.5 * w
    return m


def same_pixels(a, b, tolerance=0.01):
    """
    Return True when cameras ``a`` and ``b`` have the same pixels: size, lens and K.

    K's entries may differ by ``tolerance`` pixels (a driver's rounding); the distortion
    coefficients, trailing zeros aside, by 1e-6.
    """
    if a.shape != b.shape or (a.distorted or b.distorted) and a.model != b.model:
        return False
    count = max(len(a.d), len(b.d))
    da, db = (np.pad(np.asarray(c.d, np.float64), (0, count - len(c.d))) for c in (a, b))
    return (np.allclose(a.matrix, b.matrix, rtol=0.0, atol=tolerance)
            and np.allclose(da, db, rtol=0.0, atol=1e-6))


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
    # OpenCV's order: radial k1 k2, tangential p1 p2, k3, the rational denominator's k4-k6, the
    # thin prism s1-s4 and the sensor tilt tau_x, tau_y (OAK-D's drivers publish all 14).
    k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4, tau_x, tau_y = (d + [0.0] * 14)[:14]
    r2 = x * x + y * y
    radial = ((1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3)
              / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) + s1 * r2 + s2 * r2 ** 2
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y + s3 * r2 + s4 * r2 ** 2
    if tau_x or tau_y:
        tilt = _tilt(tau_x, tau_y)
        w = tilt[2, 0] * xd + tilt[2, 1] * yd + tilt[2, 2]
        xd, yd = ((tilt[0, 0] * xd + tilt[0, 1] * yd + tilt[0, 2]) / w,
                  (tilt[1, 0] * xd + tilt[1, 1] * yd + tilt[1, 2]) / w)
    return xd, yd


def _tilt(tau_x, tau_y):
    """
    Return OpenCV's 3x3 projection of a sensor tilted by tau_x, tau_y (radians).

    The image plane turned about x, then y, and projected back along the turned optical axis
    onto a plane at unit distance.
    """
    cx, sx, cy, sy = np.cos(tau_x), np.sin(tau_x), np.cos(tau_y), np.sin(tau_y)
    turn = (np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
            @ np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]]))
    onto = np.array([[turn[2, 2], 0, -turn[0, 2]], [0, turn[2, 2], -turn[1, 2]], [0, 0, 1]])
    return onto @ turn


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


_FOLD_SEARCH_LIMIT = 20.0  # x/z, 87 degrees


@functools.lru_cache(maxsize=16)
def _valid_radius(camera, limit=_FOLD_SEARCH_LIMIT, steps=20000):
    """
    Return the undistorted radius (x/z) up to which the camera's distortion keeps growing.

    Radial polynomials turn back beyond some radius; a point farther out would be drawn back
    into the image. Searched once per camera on a fine grid up to ``limit`` (87 degrees).
    """
    r = np.linspace(0.0, limit, steps)
    xd, _ = _distort(r, np.zeros_like(r), camera.d, camera.model)
    falling = np.flatnonzero(np.diff(xd) <= 0)
    return float(r[falling[0]]) if falling.size else limit


def _drop_beyond_fold(camera, x, y):
    """Set to NaN, in place, the normalised (x, y) beyond the radius where the lens folds."""
    with np.errstate(invalid='ignore'):
        beyond = x * x + y * y > _valid_radius(camera) ** 2
    x[beyond] = np.nan
    y[beyond] = np.nan


@functools.lru_cache(maxsize=8)
def _rays(camera):
    """Return the (H, W, 2) read-only undistorted rays of a camera (cached, see its caller)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].reshape(2, -1).astype(np.float64)
    k = camera.matrix
    x = (u - k[0, 2] - k[0, 1] / k[1, 1] * (v - k[1, 2])) / k[0, 0]
    y = (v - k[1, 2]) / k[1, 1]
    if camera.distorted:
        x, y = _undistort(x, y, camera.d, camera.model)
        # Past the fold (reach) Newton's method lands on the folded branch: a ray that
        # project() does not take back to the pixel. Such pixels have no ray.
        _drop_beyond_fold(camera, x, y)
    rays = np.stack([x, y], axis=1).reshape(camera.height, camera.width, 2).astype(np.float32)
    rays.flags.writeable = False  # shared by every caller
    return rays
