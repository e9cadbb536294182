"""Rigid transforms between camera frames (the depth-to-colour extrinsic)."""

import dataclasses
import math

from depth_sr_ros.geometry.camera import GeometryError
import numpy as np


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
