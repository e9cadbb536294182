"""A recorded bag's camera set as messages, for replaying it to a live node (the player)."""

from depth_sr_ros.bags import choose_topics, COMPRESSED, open_bag, read_static_transforms
from depth_sr_ros.ros import same_frame
from depth_sr_ros.ros.conversions import decompress, ImageFormatError
from depth_sr_ros.ros.extrinsics import static_transform
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def _message(connection, raw, kind):
    """Return a bag message as ``kind``; a compressed image (image_transport's) decoded."""
    if connection.msgtype != COMPRESSED:
        return deserialize_message(bytes(raw), kind)
    try:
        return decompress(deserialize_message(bytes(raw), CompressedImage))
    except ImageFormatError as error:
        raise ValueError(f'{connection.topic}: {error}') from None


def read_recording(path, warn=None):
    """
    Return ([(receive ns, input index, message)], topics, extrinsic) of a bag's camera set.

    ``warn`` is called with a note when the bag had to be repaired to be read (open_bag).

    The topics are chosen as depth_sr_bag chooses them (the one plausible set); ``extrinsic``
    is the depth-to-colour transform from the bag's /tf_static as [x, y, z, qx, qy, qz, qw]
    when the depth's frame differs from the colour's, else []. Images recorded compressed
    (``/compressed``, ``/compressedDepth``) come decoded, as Image messages.
    """
    with open_bag(path) as (reader, note):
        if note and warn is not None:
            warn(note)
        topics = choose_topics(reader)
        kinds = (Image, Image, CameraInfo, CameraInfo)
        index = {topic: i for i, topic in enumerate(topics)}
        connections = [c for c in reader.connections if c.topic in index]
        recording = [(t, index[c.topic], _message(c, raw, kinds[index[c.topic]]))
                     for c, t, raw in reader.messages(connections=connections)]
        edges = read_static_transforms(reader)
    if not recording:
        raise ValueError(f"bag '{path}' has no messages on {', '.join(topics)}")
    frames = {i: m.header.frame_id for _, i, m in recording if i < 2}
    extrinsic = []
    if not same_frame(frames.get(0, ''), frames.get(1, '')):
        found = static_transform(edges, frames[1], frames[0])
        extrinsic = found.to_xyz_quaternion() if found is not None else []
    return recording, topics, extrinsic
