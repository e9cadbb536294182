"""
Where the depth-to-colour transform of raw depth comes from: a parameter, else tf2.

Camera drivers publish the extrinsic between their depth and colour optical frames as a
static transform (RealSense, Azure Kinect, most URDFs). ``ExtrinsicSource`` looks it up with
tf2_ros (Buffer and TransformListener, public API only) when tf2_ros imports, which it does on
every ROS install; on the pip route, which has no tf2_ros, the ``depth_to_color`` parameter
is the way. A transform found once is kept for that pair of frames: the extrinsic of a rigid
camera does not change.
"""

from depth_sr_ros.geometry.camera import GeometryError
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.ros import frame_name
from rclpy.duration import Duration
from rclpy.time import Time

try:  # a real ROS install has tf2_ros; pip does not
    import tf2_ros
except ImportError:
    tf2_ros = None

LOOKUP_TIMEOUT = 0.05  # s: the inference thread waits at most this long for tf2


def static_transform(edges, target_frame, source_frame):
    """
    Return the Transform of points from ``source_frame`` into ``target_frame``, or None.

    :param edges: {(parent, child): Transform} as tf2 stores them (the child's pose in the
        parent: child points into the parent frame), e.g. from a bag's /tf_static. The frames
        may be joined through others (camera_link -> depth and colour optical frames).
    """
    links = {}
    target_frame, source_frame = frame_name(target_frame), frame_name(source_frame)
    for (parent, child), transform in edges.items():
        parent, child = frame_name(parent), frame_name(child)
        links.setdefault(child, []).append((parent, transform))
        links.setdefault(parent, []).append((child, transform.inverse()))
    found = {source_frame: Transform()}
    queue = [source_frame]
    while queue:
        frame = queue.pop(0)
        if frame == target_frame:
            return found[frame]
        for neighbour, step in links.get(frame, ()):
            if neighbour not in found:
                found[neighbour] = found[frame].then(step)
                queue.append(neighbour)
    return None


class StaticExtrinsics:
    """
    Depth-to-colour transforms that are known before any frame: one fixed, or a static tree.

    ``fixed``: the node's depth_to_color parameter or depth_sr_bag's --depth-to-color; ``edges``:
    a bag's /tf_static. ``lookup`` has the signature of ExtrinsicSource.lookup (tf2's order of
    frames: the transform that takes depth points into the colour frame).
    """

    def __init__(self, fixed=None, edges=None, remedy='give the depth-to-colour transform'):
        """Build the source; ``remedy`` ends the reason given when no transform is found."""
        self.fixed = fixed
        self.edges = edges or {}
        self.remedy = remedy

    def lookup(self, depth_frame, color_frame, stamp=None):
        """Return (Transform, '') or (None, reason) for depth points into the colour frame."""
        if self.fixed is not None:
            return self.fixed, ''
        found = static_transform(self.edges, color_frame, depth_frame)
        if found is not None:
            return found, ''
        return None, (f'no transform from depth frame {depth_frame!r} to colour frame '
                      f'{color_frame!r}: {self.remedy}')


class ExtrinsicSource:
    """Return the depth-to-colour Transform for a frame pair, or say why there is none."""

    def __init__(self, node, fixed=None):
        """
        Build the source.

        :param node: the rclpy node (tf2's listener subscribes to /tf and /tf_static on it).
        :param fixed: [x, y, z, qx, qy, qz, qw] from the depth_to_color parameter, or None.
            Raises GeometryError if it is not a transform.
        """
        self.fixed = None if fixed is None else Transform.from_xyz_quaternion(fixed)
        self._static = StaticExtrinsics(self.fixed)
        self.buffer = None
        self._found = {}  # (colour frame, depth frame) -> Transform
        if self.fixed is None and tf2_ros is not None:
            self.buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(self.buffer, node)

    @property
    def backend(self):
        """Where transforms come from: 'parameter', 'tf2' or 'none'."""
        if self.fixed is not None:
            return 'parameter'
        return 'tf2' if self.buffer is not None else 'none'

    def lookup(self, depth_frame, color_frame, stamp):
        """
        Return (Transform, '') or (None, reason) for depth points into the colour frame.

        :param stamp: the depth message's stamp (builtin_interfaces/Time); the extrinsic is
            rigid, so the latest transform is used whatever the stamp.
        """
        if self.fixed is not None:
            return self._static.lookup(depth_frame, color_frame, stamp)
        parameter = ('set the depth_to_color parameter ([x, y, z, qx, qy, qz, qw] from '
                     f"'{depth_frame}' to '{color_frame}')")
        if self.buffer is None:  # no tf2 here: name where the numbers are, and the other way
            return None, f'no transform from depth frame {depth_frame!r} to colour frame ' \
                         f'{color_frame!r}: tf2_ros is not installed here, so {parameter}: ' \
                         "the camera driver's /tf_static has it; or give the node the " \
                         'depth the driver registers to the colour camera (RealSense: ' \
                         'aligned_depth_to_color, align_depth.enable:=true)'
        remedy = (f'{parameter} or publish that transform on tf2 (the camera driver or a '
                  'static_transform_publisher)')
        key = (color_frame, depth_frame)
        if key in self._found:
            return self._found[key], ''
        try:
            # The latest transform (Time()): the extrinsic of a rigid camera, kept once found;
            # a stamp in the past would fail on every frame for a transform on /tf.
            msg = self.buffer.lookup_transform(color_frame, depth_frame, Time(),
                                               timeout=Duration(seconds=LOOKUP_TIMEOUT))
        except tf2_ros.TransformException as error:
            first = (str(error).splitlines() or [type(error).__name__])[0]
            return None, (f'no transform from depth frame {depth_frame!r} to colour frame '
                          f'{color_frame!r} on tf2 ({first}): {remedy}')
        t, q = msg.transform.translation, msg.transform.rotation
        try:
            found = Transform.from_xyz_quaternion([t.x, t.y, t.z, q.x, q.y, q.z, q.w])
        except GeometryError as error:
            return None, f'the tf2 transform from {depth_frame!r} to {color_frame!r}: {error}'
        self._found[key] = found
        return found, ''
