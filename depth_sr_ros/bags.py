"""
Reading and writing rosbag2 recordings (sqlite3 and mcap) through rosbags, no ROS install.

``open_bag`` opens a bag, reading a cut MCAP file up to its last complete record;
``choose_topics`` finds its one plausible depth/colour/camera_info set; ``read_static_transforms``
reads its /tf_static; ``bag_writer`` makes the writer of a new bag. Used by depth_sr_bag,
depth_sr_player and depth_sr_rig_bag.
"""

import collections
import contextlib
import os
import struct
import tempfile

from depth_sr_ros.geometry.transform import Transform


IMAGE, INFO = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'  # decoded by ros.conversions.decompress
# image_transport publishes a compressed stream under the raw topic's name plus these.
TRANSPORTS = ('/compressed', '/compressedDepth')
TF_STATIC = '/tf_static'
# What the node and depth_sr_bag write: never an input (a bag recorded beside a running node,
# or depth_sr_bag's output with its inputs copied, holds them too).
OUTPUT_TOPICS = {'image': '/depth_sr/image', 'info': '/depth_sr/camera_info',
                 'points': '/depth_sr/points'}
# depth_sr_bag's options that name the four topics, in choose_topics' order.
TOPIC_OPTIONS = ('--depth', '--color', '--depth-info', '--color-info')


class BagError(ValueError):
    """Input that cannot be processed: said in one line, exit status 2 (the player: 1)."""


MCAP_MAGIC = b'\x89MCAP0\r\n'
# An MCAP footer record (opcode 0x02, 20 bytes) with no summary: readers then scan the records.
MCAP_FOOTER_NO_SUMMARY = b'\x02' + struct.pack('<QQQI', 20, 0, 0, 0) + MCAP_MAGIC


@contextlib.contextmanager
def open_bag(path, scratch_dir=None):
    """
    Yield (reader, note): an open rosbags Reader of the bag and what was done to read it.

    A bag whose MCAP file was cut short (a recorder killed: no summary, no footer, the last
    chunk incomplete) is read from a repaired copy of its complete records, made in a
    temporary folder in ``scratch_dir`` (default: the system's), and ``note`` says so;
    otherwise ``note`` is ''. A bag folder without metadata.yaml (a recorder that did not
    close) that holds one data file is read as that file, and ``note`` says so. BagError for
    a missing path or a file that is no bag (also when the repaired copy cannot be read or
    written: the error is the input's own).
    """
    if not os.path.exists(path):
        raise BagError(f"input '{path}' does not exist")
    notes = []
    lone = _lone_data_file(path)
    if lone is not None:
        notes.append(f'{path} has no metadata.yaml (a recorder that did not close): read its '
                     f'one file, {os.path.basename(lone)}')
        path = lone
    with tempfile.TemporaryDirectory(prefix='depth_sr_bag_', dir=scratch_dir) as scratch:
        try:
            reader = _open_reader(path)
        except BagError as error:
            try:
                repaired = _repair_cut_mcap(path, scratch)
                if repaired is None:
                    raise
                copy, repair_note = repaired
                notes.append(repair_note)
                reader = _open_reader(copy)
            except (BagError, OSError) as repair_error:
                if repair_error is error:
                    raise
                raise BagError(f'{error} (reading its complete records failed too: '
                               f'{str(repair_error).splitlines()[0]})') from None
        try:
            yield reader, '; '.join(notes)
        finally:
            reader.close()


def _unindexed_files(path):
    """Return the .mcap and .db3 files of a bag folder without metadata.yaml, else []."""
    names = os.listdir(path) if os.path.isdir(path) else []
    if 'metadata.yaml' in names:
        return []
    return [n for n in names if n.endswith(('.mcap', '.db3'))]


def _lone_data_file(path):
    """Return the one data file of a bag folder without metadata.yaml, else None."""
    files = _unindexed_files(path)
    return os.path.join(path, files[0]) if len(files) == 1 else None


def _open_reader(path):
    from rosbags.rosbag2 import Reader, ReaderError
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, ValueError, OSError) as error:
        hint = ''
        if _unindexed_files(path):
            # A recorder killed mid-recording writes none (Humble: only on close).
            hint = (' (it has no metadata.yaml: `ros2 bag reindex` writes one, or give one of '
                    'its files)')
        raise BagError(f"input '{path}' is not a readable rosbag2 bag{hint}: "
                       f'{str(error).splitlines()[0] if str(error) else type(error).__name__}')
    return reader


def complete_mcap_end(path):
    """
    Return where the complete records of an MCAP file cut short end; None for a whole file.

    A whole file ends with the magic; a cut one is walked record by record (opcode, uint64
    length) up to the first record that runs past the end of the file. None also for a file
    that does not start like an MCAP file.
    """
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        if f.read(8) != MCAP_MAGIC:
            return None
        f.seek(max(size - 8, 8))
        if size >= 16 and f.read(8) == MCAP_MAGIC:
            return None
        end = 8
        while end + 9 <= size:
            f.seek(end + 1)
            (length,) = struct.unpack('<Q', f.read(8))
            if end + 9 + length > size:
                break
            end += 9 + length
    return end


def _repair_cut_mcap(path, scratch):
    """
    Copy a bag whose MCAP files were cut short into ``scratch``, repaired.

    Each cut file ends after its last complete record with a footer that has no summary (so
    rosbags scans its records); the other files are linked.

    Return (the copy's path, a note), or None when no MCAP file of the bag is cut short.
    """
    folder = os.path.isdir(path)
    names = sorted(os.listdir(path)) if folder else [os.path.basename(path)]
    source = path if folder else os.path.dirname(os.path.abspath(path))
    cuts = {n: complete_mcap_end(os.path.join(source, n)) for n in names if n.endswith('.mcap')}
    cuts = {n: end for n, end in cuts.items() if end is not None}
    if not cuts:
        return None
    target = (os.path.join(scratch, os.path.basename(os.path.normpath(path))) if folder
              else os.path.join(scratch, names[0]))
    into = target if folder else scratch
    os.makedirs(into, exist_ok=True)
    notes = []
    for name in names:
        original = os.path.abspath(os.path.join(source, name))
        if name not in cuts:
            os.symlink(original, os.path.join(into, name))
            continue
        with open(original, 'rb') as src, open(os.path.join(into, name), 'wb') as dst:
            left = cuts[name]
            while left:
                block = src.read(min(left, 1 << 24))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
            dst.write(MCAP_FOOTER_NO_SUMMARY)
        notes.append(f'{name} is cut short: its complete records (the first {cuts[name]} of '
                     f'{os.path.getsize(original)} bytes) were read, the rest is lost')
    return target, '; '.join(notes)


def input_storage(path):
    """Return 'mcap' or 'sqlite3': the storage of a bag folder or file."""
    names = os.listdir(path) if os.path.isdir(path) else [os.path.basename(path)]
    return 'mcap' if any(n.endswith('.mcap') or '.mcap.' in n for n in names) else 'sqlite3'


def topic_table(reader):
    """Return [(topic, type, count)] of a bag."""
    return [(c.topic, c.msgtype, c.msgcount) for c in reader.connections]


def message_counts(reader):
    """Return {topic: messages} of a bag, over all its connections on each topic."""
    counts = collections.Counter()
    for c in reader.connections:
        counts[c.topic] += c.msgcount
    return counts


def _raw_topic(image_topic):
    """Return the raw image topic a compressed one was published beside (else the topic)."""
    for suffix in TRANSPORTS:
        if image_topic.endswith(suffix):
            return image_topic[:-len(suffix)]
    return image_topic


def _info_topic(image_topic):
    return _raw_topic(image_topic).rsplit('/', 1)[0] + '/camera_info'


def candidate_sets(reader, needs_info=(True, True)):
    """
    Return the plausible (depth, colour, depth_info, colour_info) topic sets of a bag.

    A depth topic is an Image topic with 'depth' in its name (not colour registered to the
    depth camera, Azure Kinect's rgb_to_depth, nor the node's output) or in a 'stereo'
    namespace (Luxonis OAK-D's /oak/stereo/image_raw), a colour topic an Image
    topic with 'color', 'colour' or 'rgb' in it; each needs the CameraInfo topic beside it,
    unless ``needs_info`` says not (its camera_info comes from elsewhere; its info topic is
    then ''). A CompressedImage topic (image_transport's .../compressed, .../compressedDepth)
    counts where the bag does not hold messages on its raw Image topic too (a recording over
    a network may hold only the compressed ones). Image topics without a message do not
    count (a recorder subscribes to every transport: jpeg cannot hold depth, so
    .../compressed of a depth image stays empty). With several cameras, a depth and a colour
    topic pair within one camera: each keeps the partners that share the most of its
    namespace (/cam1/depth/... with /cam1/color/..., not /cam2/color/...). A camera at the
    root namespace (Azure Kinect's /depth/..., /rgb/...) shares none with any, so another
    camera's lone depth still pairs with its colour: more sets, and the topics asked for.
    """
    types = {c.topic: c.msgtype for c in reader.connections}
    counts = message_counts(reader)
    images = [t for t, kind in types.items() if counts[t] and (kind == IMAGE or (
        kind == COMPRESSED and not (types.get(_raw_topic(t)) == IMAGE
                                    and counts[_raw_topic(t)])))]

    def info(topic, needed):
        return _info_topic(topic) if needed else ''

    def has_info(topic, needed):
        return not needed or types.get(_info_topic(topic)) == INFO

    def is_depth(topic):
        if 'stereo' in topic.strip('/').split('/')[:-1]:
            return True
        return 'depth' in topic and not any(
            f'{word}_to_depth' in topic for word in ('rgb', 'color', 'colour')) and not (
            _raw_topic(topic).endswith(OUTPUT_TOPICS['image']))
    depth = [t for t in images if is_depth(t) and has_info(t, needs_info[0])]
    color = [t for t in images if 'depth' not in t and any(
        word in t for word in ('color', 'colour', 'rgb')) and has_info(t, needs_info[1])]
    best_color = {d: max(_shared(d, c) for c in color) for d in depth} if color else {}
    best_depth = {c: max(_shared(d, c) for d in depth) for c in color} if depth else {}
    return [(d, c, info(d, needs_info[0]), info(c, needs_info[1])) for d in depth for c in color
            if _shared(d, c) == best_color[d] == best_depth[c]]


def _shared(first, second):
    """Return how many leading namespaces two topic names share."""
    count = 0
    for a, b in zip(first.strip('/').split('/')[:-1], second.strip('/').split('/')[:-1]):
        if a != b:
            break
        count += 1
    return count


def choose_topics(reader, depth='', color='', depth_info='', color_info='',
                  needs_info=(True, True), options=TOPIC_OPTIONS, info_files=True):
    """
    Return the topic set to use: the given one (checked), or the one plausible set.

    ``needs_info``: whether the depth's and the colour's camera_info come from the bag (else
    their topic is ''). ``options``: the caller's names of the four topics, for its messages;
    ``info_files``: whether the caller can take a camera_info from a file instead (said in
    them).
    """
    types = {c.topic: c.msgtype for c in reader.connections}
    given = (depth, color, depth_info, color_info)
    needed = (True, True) + tuple(needs_info)
    named = f'{", ".join(options[:3])} and {options[3]}'
    if any(given):
        if not all(g or not need for g, need in zip(given, needed)):
            files = ' (the info topics not when their file is given)' if info_files else ''
            raise BagError(f'give all four of {named}{files}, or none of them')
        for option, topic, kinds, need in zip(
                options, given, ((IMAGE, COMPRESSED),) * 2 + ((INFO,),) * 2, needed):
            if not need:
                if topic:  # it would lose to the bag's topic, matched by stamp
                    raise BagError(f"{option} '{topic}' and a calibration file both give that "
                                   'camera_info: give one of them')
                continue
            if topic not in types:
                raise BagError(f"topic '{topic}' is not in the bag (see --list)")
            if types[topic] not in kinds:
                raise BagError(f"topic '{topic}' is {types[topic]}, not {' or '.join(kinds)}")
        return given
    sets = candidate_sets(reader, needs_info)
    if len(sets) == 1:
        return sets[0]
    listed = '; '.join(' '.join(s) for s in sets) or 'none'
    raise BagError(f'{len(sets)} plausible depth/colour/camera_info sets ({listed}): give '
                   f'{named}')


def read_static_transforms(reader):
    """Return {(parent, child): Transform} from the bag's /tf_static (rosbags' typestore)."""
    from rosbags.typesys import get_typestore, Stores
    connections = [c for c in reader.connections if c.topic == TF_STATIC]
    if not connections:
        return {}
    store = get_typestore(Stores.ROS2_HUMBLE)
    edges = {}
    for connection, _, raw in reader.messages(connections=connections):
        for t in store.deserialize_cdr(raw, connection.msgtype).transforms:
            tr, q = t.transform.translation, t.transform.rotation
            edges[(t.header.frame_id, t.child_frame_id)] = Transform.from_xyz_quaternion(
                [tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w])
    return edges


def bag_writer(path, storage):
    """
    Return an unopened rosbags Writer of a new bag, MCAP or sqlite3, rosbag2 metadata version 8.

    Version 9 (Jazzy's) writes the QoS profiles as a YAML list, which Humble's ros2 bag reads
    as a string and fails on; Jazzy and newer read version 8.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    return Writer(path, version=8, storage_plugin=plugin)


def latched_qos():
    """
    Return the QoS that tf2 gives /tf_static: reliable, transient local, the last message.

    A bag's /tf_static recorded without it is replayed volatile by `ros2 bag play`, and tf2's
    static listener (transient local) does not take it.
    """
    from rosbags.interfaces import (
        Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime)
    default = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               default, default, QosLiveliness.AUTOMATIC, default, False)


def tf_static_message(store, transforms):
    """Return a serialised tf2_msgs/TFMessage of [(parent, child, [x, y, z, qx, qy, qz, qw])]."""
    types = store.types
    stamped = []
    for parent, child, values in transforms:
        header = types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id=parent)
        stamped.append(types['geometry_msgs/msg/TransformStamped'](
            header=header, child_frame_id=child, transform=types['geometry_msgs/msg/Transform'](
                translation=types['geometry_msgs/msg/Vector3'](*values[:3]),
                rotation=types['geometry_msgs/msg/Quaternion'](*values[3:]))))
    return bytes(store.serialize_cdr(types['tf2_msgs/msg/TFMessage'](transforms=stamped),
                                     'tf2_msgs/msg/TFMessage'))
