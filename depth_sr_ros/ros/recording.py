"""A recorded bag's camera set as messages, for replaying it to a live node (the player)."""

from depth_sr_ros.bags import choose_topics, COMPRESSED, open_bag, read_static_transforms
from depth_sr_ros.ros import same_frame
from depth_sr_ros.ros.conversions import decompress, ImageFormatError
from depth_sr_ros.ros.extrinsics import static_transform
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


# The inputs of the node, in the order of a recording's input index.
KINDS = (Image, Image, CameraInfo, CameraInfo)
# The player's parameters that name a bag's topics, in choose_topics' order.
TOPIC_PARAMETERS = ('bag_depth', 'bag_color', 'bag_depth_info', 'bag_color_info')


class Recorded(tuple):
    """One recorded message: (receive ns, input index, topic, type, serialised bytes)."""

    @property
    def compressed(self):
        """Return True for a CompressedImage, which message() decodes to an Image."""
        return self[3] == COMPRESSED

    @property
    def raw(self):
        """Return the message as the bag holds it, serialised."""
        return self[4]

    def message(self):
        """Return it as the node takes it (Image or CameraInfo), a compressed image decoded."""
        _, index, topic, _, raw = self
        if not self.compressed:
            return deserialize_message(raw, KINDS[index])
        try:
            return decompress(deserialize_message(raw, CompressedImage))
        except ImageFormatError as error:
            raise ValueError(f'{topic}: {error}') from None


def read_recording(path, warn=None, topics=()):
    """
    Return ([Recorded], topics, extrinsic) of a bag's camera set, in receive order.

    ``warn`` is called with a note when the bag had to be repaired to be read (open_bag).

    ``topics``: (depth, colour, depth_info, colour_info) to play; none given, they are chosen
    as depth_sr_bag chooses them (the one plausible set). ``extrinsic`` is the depth-to-colour
    transform from the bag's /tf_static as [x, y, z, qx, qy, qz, qw] when the depth's frame
    differs from the colour's, else []. The messages stay serialised, as in the bag (a
    compressed recording stays compressed in memory); each is decoded once here, so that one
    that does not decode is said now. The player publishes the uncompressed ones as they are
    and decodes a compressed one (Recorded.message) each time it goes out.
    """
    with open_bag(path) as (reader, note):
        if note and warn is not None:
            warn(note)
        topics = choose_topics(reader, *topics, options=TOPIC_PARAMETERS, info_files=False)
        index = {topic: i for i, topic in enumerate(topics)}
        connections = [c for c in reader.connections if c.topic in index]
        recording, frames = [], {}
        for c, t, raw in reader.messages(connections=connections):
            entry = Recorded((t, index[c.topic], c.topic, c.msgtype, bytes(raw)))
            message = entry.message()  # one that does not decode is said before any playing
            frames.setdefault(entry[1], message.header.frame_id)
            recording.append(entry)
        edges = read_static_transforms(reader)
    if not recording:
        raise ValueError(f"bag '{path}' has no messages on {', '.join(topics)}")
    extrinsic = []
    if not same_frame(frames.get(0, ''), frames.get(1, '')):
        found = static_transform(edges, frames[1], frames[0])
        extrinsic = found.to_xyz_quaternion() if found is not None else []
    return recording, topics, extrinsic
