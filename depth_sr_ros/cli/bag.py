"""
depth_sr_bag: super-resolve a rosbag2 recording offline, bag in and bag out.

    depth_sr_bag --input IN_BAG --output OUT_BAG [--model FILE] [--points] [--copy-inputs]

Reads the bag with rosbags (sqlite3 or mcap, no ROS install needed), pairs depth and colour
with the node's own rules (ros/sync.py: slop; the queues hold LATE_SECONDS of stamps beyond the
slop), runs every pair through the node's FrameProcessor (registration, model, output messages)
and writes /depth_sr/image, /depth_sr/camera_info and, with --points, /depth_sr/points, stamped
as the node stamps them and written at the depth message's receive time. Raw depth (its frame
differs from the colour's) takes its extrinsic from the bag's /tf_static, or from
--depth-to-color. Unlike a live node replaying the bag, no pair is dropped for being late:
every pair is processed.

Bad input is one line on stderr and exit status 2; Ctrl-C closes the output as a valid bag
with the pairs done so far (exit status 130); frames that fail (out of memory) are skipped
and counted, the others written, and the run exits 1 (2 when none is written).
"""

import argparse
import collections
import json
import os
import struct
import sys
import time

from depth_sr_ros import bags
from depth_sr_ros.bags import (
    bag_writer, BagError, candidate_sets, choose_topics, COMPRESSED, input_storage,
    message_counts, open_bag, read_static_transforms, topic_table)
from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.console import image_size, interruptible, number, numbers, one_of
from depth_sr_ros.files import (
    check_output_file, check_writable_folder, refuse_overlap, staged_folder,
    write_text_atomically)
from depth_sr_ros.geometry.camera import GeometryError
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.inference import device_option, load_predictor
from depth_sr_ros.paths import MODEL_HELP, resolve_model_path
from depth_sr_ros.ros.conversions import (
    camera_info_from_yaml, decompress, ImageFormatError, message_type, stamp_ns)
from depth_sr_ros.ros.extrinsics import StaticExtrinsics
from depth_sr_ros.ros.parameters import check_value, PARAMETERS
from depth_sr_ros.ros.pipeline import FrameProcessor, Settings
from depth_sr_ros.ros.sync import CameraInfoStore, COLOR, DEPTH, StampPairer
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

# The pairing queues hold the messages of the last this many seconds (of stamps) beyond the
# slop, whatever the rates: a colour image recorded up to that long after its depth (a
# driver's latency at 90 Hz depth beside 30 Hz colour) still finds it.
LATE_SECONDS = 1.0

# The topics written, with their message types.
OUTPUT_KINDS = {'image': Image, 'info': CameraInfo, 'points': PointCloud2}
OUTPUT_TOPICS = {key: (bags.OUTPUT_TOPICS[key], kind) for key, kind in OUTPUT_KINDS.items()}


class Summary:
    """What happened to the pairs, for the closing lines and --json."""

    def __init__(self, output):
        """Start counting for the output bag ``output``."""
        self.output = output
        self.pairs = 0
        self.written = 0
        self.skipped = collections.Counter()  # reason -> count
        self.model_seconds = 0.0
        self.started = time.monotonic()
        self.notes = []
        self.interrupted = False
        self.cut_short = False  # reading stopped at a damaged or cut part of the input
        self.failed = 0  # frames that raised more than a format error (out of memory, ...)

    def as_dict(self):
        """Return the summary as plain types."""
        elapsed = time.monotonic() - self.started
        return {'output': self.output, 'pairs': self.pairs, 'written': self.written,
                'skipped': dict(self.skipped), 'seconds': round(elapsed, 3),
                'seconds_per_pair': round(elapsed / self.pairs, 4) if self.pairs else None,
                'processing_seconds_per_pair': (round(self.model_seconds / self.pairs, 4)
                                                if self.pairs else None),
                'notes': self.notes}

    def lines(self):
        """Return the human-readable summary."""
        d = self.as_dict()
        out = [f"pairs found: {d['pairs']}, outputs written: {d['written']}"]
        for reason, count in sorted(self.skipped.items()):
            out.append(f'skipped {count}: {reason}')
        if d['pairs']:
            out.append(f"time per pair: {d['seconds_per_pair'] * 1e3:.0f} ms in all, "
                       f"{d['processing_seconds_per_pair'] * 1e3:.0f} ms in FrameProcessor")
        out += self.notes
        out.append(f'output: {self.output}')
        return out


def _writer(path, storage, copy_from, notes, points):
    from rosbags.typesys import get_types_from_msg, get_typestore, Stores
    writer = bag_writer(path, storage)
    writer.open()
    store = get_typestore(Stores.ROS2_HUMBLE)
    connections = {key: writer.add_connection(topic, message_type(kind), typestore=store)
                   for key, (topic, kind) in OUTPUT_TOPICS.items()
                   if points or key != 'points'}  # no empty points topic without --points
    for c in copy_from:
        # The bag's own definition and hash: vendor types (realsense2_camera_msgs, ...) are in
        # no typestore. A bag from before Jazzy has no hash: its definition is registered, and
        # the typestore computes the hash from it.
        own = c.msgdef.data if c.msgdef else None
        options = {'msgdef': own, 'rihs01': c.digest} if own and c.digest else {
            'typestore': store}
        try:
            if own and not c.digest and c.msgtype not in store.types:
                store.register(get_types_from_msg(own, c.msgtype))
            connections[('copy', c.topic)] = writer.add_connection(
                c.topic, c.msgtype, serialization_format=c.ext.serialization_format,
                offered_qos_profiles=c.ext.offered_qos_profiles, **options)
        except Exception as error:  # rosbags' TypesysError / WriterError for unknown types
            notes.append(f'{c.topic} not copied ({c.msgcount} messages): '
                         f'{type(error).__name__}: {(str(error).splitlines() or [""])[0]}')
    return writer, connections


def check_paths(args):
    """
    Raise BagError, before any work, for output paths that cannot or must not be written.

    The output must not be the input, contain it or lie inside it (however it is spelled);
    it may exist only with --overwrite; its folder, and that of --json, must be writable.
    """
    try:
        refuse_overlap(args.output, [args.input])
        if os.path.lexists(args.output) and not args.overwrite:
            raise ValueError(f"output '{args.output}' exists (use --overwrite to replace it)")
        check_writable_folder(args.output)
        if args.json:
            check_output_file(args.json, '--json', [args.input])
            try:
                refuse_overlap(args.json, [args.output])
            except ValueError:
                raise ValueError(f"--json '{args.json}' would be written into the output bag "
                                 f"'{args.output}'") from None
    except ValueError as error:
        raise BagError(str(error)) from None


def process_bag(args, progress=True):
    """
    Run the tool; return the Summary. Raises BagError for input it cannot use.

    The output bag is written beside --output and moved into place only once it is complete
    (also after Ctrl-C, which closes it as a valid bag); an existing output (--overwrite) is
    replaced only then, and is kept when the run fails.
    """
    check_paths(args)
    # A repaired copy of a cut bag goes beside the output (the system's temporary folder may
    # be small or in memory).
    scratch = os.path.dirname(os.path.abspath(args.output))
    with open_bag(args.input, scratch) as (reader, note):
        try:
            with staged_folder(args.output, args.overwrite) as staging:
                return _process(reader, note, args, progress, staging)
        except BagError:
            raise
        except (OSError, ValueError) as error:
            raise BagError(f"output '{args.output}': {error}") from None


def _process(reader, note, args, progress, staging):
    """Process the open bag ``reader`` into the bag folder ``staging`` (see process_bag)."""
    files = (args.depth_info_file, args.color_info_file)
    try:
        from_files = [camera_info_from_yaml(f) if f else None for f in files]
    except ValueError as error:
        raise BagError(str(error)) from None
    depth_topic, color_topic, depth_info_topic, color_info_topic = choose_topics(
        reader, args.depth, args.color, args.depth_info, args.color_info,
        needs_info=tuple(f is None for f in from_files))
    fixed = None
    if args.depth_to_color:
        try:
            fixed = Transform.from_xyz_quaternion(args.depth_to_color.split(','))
        except (GeometryError, ValueError) as error:
            raise BagError(f'--depth-to-color: {error}') from None
    extrinsics = StaticExtrinsics(fixed, {} if fixed is not None else read_static_transforms(
        reader), "it is not in the bag's /tf_static: give --depth-to-color")
    try:
        predictor = load_predictor(resolve_model_path(args.model), device=args.device)
    except (CheckpointError, RuntimeError, ValueError) as error:
        raise BagError(str(error)) from None
    try:
        processor = FrameProcessor(predictor, output_size=args.output_size,
                                   max_output_pixels=args.max_output_pixels,
                                   max_shift=args.alignment_max_shift)
    except ValueError as error:  # an output size below the model's scale
        raise BagError(f'--output-size: {error}') from None
    settings = Settings(publish_points=args.points, alignment=args.alignment,
                        alignment_offset=list(args.alignment_offset))
    storage = args.storage or input_storage(args.input)
    wanted = {depth_topic: DEPTH, color_topic: COLOR}
    inputs = [c for c in reader.connections
              if c.topic in wanted or c.topic in (depth_info_topic, color_info_topic)]
    summary = Summary(args.output)
    if note:
        summary.notes.append(note)
    copied = []
    if args.copy_inputs:
        written = {topic for key, (topic, _) in OUTPUT_TOPICS.items()
                   if args.points or key != 'points'}
        copied = [c for c in reader.connections if c.topic not in written]
        old = {t: n for t, n in message_counts(reader).items() if t in written}
        if old:  # a bag recorded beside a running node, or this tool's own output
            summary.notes.append(
                'not copied: ' + ', '.join(f'{topic} ({count} messages)'
                                           for topic, count in sorted(old.items()))
                + ', which this run writes anew')
    infos = read_camera_infos(reader, (depth_info_topic, color_info_topic), summary, from_files)
    pairer = StampPairer(max(1, sum(c.msgcount for c in inputs)), args.slop,
                         max_age=LATE_SECONDS + args.slop)
    total = sum(c.msgcount for c in (copied or inputs))
    bar = _progress(total, progress)
    writer = None
    read = 0
    summary.cut_short = False  # the image pass's own (the camera_info pass may have stopped)
    try:
        writer, out = _writer(staging, storage, copied, summary.notes, args.points)
        for connection, timestamp, raw in _readable(
                reader.messages(connections=copied or inputs), summary):
            bar.update(1)
            read += 1
            if ('copy', connection.topic) in out:
                writer.write(out[('copy', connection.topic)], timestamp, raw)
            if connection.topic in wanted:
                try:
                    msg = _image(connection.msgtype, raw)
                except ImageFormatError as error:
                    summary.skipped[f'{connection.topic}: {error}'] += 1
                    continue
                # Each message travels with its receive time: the output is written at
                # the depth message's.
                pair = pairer.add(wanted[connection.topic], stamp_ns(msg.header.stamp),
                                  (msg, timestamp))
                if pair is not None:
                    (depth_msg, received), (color_msg, _) = pair
                    _process_pair((depth_msg, color_msg), processor, infos, settings,
                                  extrinsics, writer, out, received, summary)
    except KeyboardInterrupt:
        summary.interrupted = True
        if not summary.cut_short:  # the camera_info pass's stop lies beyond where this ended
            summary.notes = [n for n in summary.notes if not n.startswith(DAMAGE_NOTE)]
        summary.notes.append(f'interrupted: the output holds the {summary.written} '
                             'outputs written so far')
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if args.alignment == 'auto' and summary.written:
        summary.notes.append(alignment_note(processor))
    if summary.cut_short and not summary.interrupted and read < total:  # known to the index
        summary.skipped['messages not read: reading stopped at a damaged or cut part of the '
                        'input'] += total - read
    unpaired = sum(pairer.counts.unpaired) + sum(len(q) for q in pairer.queues)
    if unpaired:
        summary.skipped['messages left without a partner (none within the slop, or the other '
                        'input has fewer)'] += unpaired
    if summary.interrupted:
        return summary
    if summary.pairs and not summary.written:
        reasons = '; '.join(f'{count} x {reason}' for reason, count in
                            summary.skipped.most_common(2))
        raise BagError(f'{summary.pairs} pairs, none written: {reasons}')
    if summary.pairs == 0:
        received_counts = pairer.counts.received
        raise BagError(f'no depth/colour pairs: {received_counts[DEPTH]} depth and '
                       f'{received_counts[COLOR]} colour messages, none within '
                       f'{args.slop} s of each other (see --slop); the output holds '
                       'no super-resolved depth')
    return summary


def alignment_note(processor):
    """
    Return where the alignment left the depth at the end of the bag, for the summary.

    The bag is read once, as a node would see it live: the frames before the first correction
    (at the earliest the aligner's third correlated frame) are written as registered.
    """
    estimate = processor.aligner.estimate
    dx, dy = (v * processor.scale for v in estimate.correction)
    state = estimate.reason or 'the edges match'
    if not (dx or dy):
        return f'alignment at the end: no move ({state})'
    return (f'alignment at the end: depth moved back from {dx:+.1f}, {dy:+.1f} px (right, '
            f'down) off the colour image ({state}); the frames before the correction are '
            'written as registered (--alignment fixed --alignment-offset='
            f'{dx:.1f},{dy:.1f} moves every frame)')


def read_camera_infos(reader, topics, summary, from_files=(None, None)):
    """
    Return the depth's and the colour's CameraInfoStore: every camera_info of ``topics``.

    Offline the tool can look ahead: an image then finds the camera_info of its own stamp even
    when the driver wrote that just after the image (else the one stamped nearest it). An
    input with a message in ``from_files`` (a calibration file) takes that one for every
    image; its topic is ''.
    """
    connections = [c for c in reader.connections if c.topic and c.topic in topics]
    stores = []
    for topic, given in zip(topics, from_files):
        store = CameraInfoStore(keep=max(1, sum(c.msgcount for c in connections
                                                if c.topic == topic)))
        if given is not None:
            store.add(given, 0)
        stores.append(store)
    for connection, _, raw in _readable(reader.messages(connections=connections), summary):
        msg = deserialize_message(bytes(raw), CameraInfo)
        for topic, store in zip(topics, stores):
            if connection.topic == topic:
                store.add(msg, stamp_ns(msg.header.stamp))
    return stores


DAMAGE_NOTE = 'reading stopped at a damaged or cut part of the input'


def _readable(messages, summary):
    """Yield the reader's messages; a bag cut short ends the stream with a note."""
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except (EOFError, OSError, ValueError, struct.error) as error:
            why = f'{type(error).__name__}: {(str(error).splitlines() or [""])[0]}'
        except Exception as error:  # rosbags' own ReaderError
            if type(error).__name__ != 'ReaderError':
                raise
            why = str(error)
        else:
            yield item
            continue
        summary.cut_short = True
        note = f'{DAMAGE_NOTE} ({why}): what came before it was processed'
        if note not in summary.notes:  # the camera_info pass stops there too
            summary.notes.append(note)
        return


def _image(msgtype, raw):
    """Return an Image of a serialised Image or CompressedImage (decoded: decompress)."""
    if msgtype == COMPRESSED:
        return decompress(deserialize_message(bytes(raw), CompressedImage))
    return deserialize_message(bytes(raw), Image)


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit='msg', disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def _process_pair(pair, processor, infos, settings, extrinsics, writer, out, timestamp,
                  summary):
    depth_msg, color_msg = pair
    summary.pairs += 1
    started = time.perf_counter()
    try:
        result = processor.process_pair(depth_msg, color_msg, infos[0], infos[1], settings,
                                        extrinsics)
    except (ImageFormatError, ValueError) as error:
        summary.skipped[str(error)] += 1
        return
    except KeyboardInterrupt:
        summary.skipped['the pair in progress at Ctrl-C'] += 1
        raise
    except Exception as error:  # out of GPU memory, any inference error: as the node does
        summary.skipped[f'failed: {type(error).__name__}: '
                        f'{(str(error).splitlines() or [""])[0]}'] += 1
        summary.failed += 1
        return
    finally:
        summary.model_seconds += time.perf_counter() - started
    for note in result.notices + result.warnings + result.advice:
        if note not in summary.notes:
            summary.notes.append(note)
    writer.write(out['image'], timestamp, serialize_message(result.depth))
    writer.write(out['info'], timestamp, serialize_message(result.camera_info))
    if result.points is not None:
        writer.write(out['points'], timestamp, serialize_message(result.points))
    summary.written += 1


def parse_args(argv=None):
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--input', required=True, help='input bag folder (or .mcap / .db3)')
    parser.add_argument('--output', help='output bag folder (required unless --list)')
    parser.add_argument('--model', default='', help=MODEL_HELP)
    parser.add_argument('--device', default='auto', type=device_option,
                        help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--depth', default='', help='depth Image (or CompressedImage) topic')
    parser.add_argument('--color', default='', help='colour Image (or CompressedImage) topic')
    parser.add_argument('--depth-info', default='', help='depth CameraInfo topic')
    parser.add_argument('--color-info', default='', help='colour CameraInfo topic')
    parser.add_argument('--depth-info-file', default='',
                        help="the depth camera's calibration (camera_calibration's YAML, as "
                             'camera_info_manager reads it) for a bag without its camera_info')
    parser.add_argument('--color-info-file', default='',
                        help="the colour camera's calibration, likewise")
    parser.add_argument('--depth-to-color', default='',
                        help='x,y,z,qx,qy,qz,qw from the depth optical frame to the colour one '
                             "(default: from the bag's /tf_static)")
    parser.add_argument('--slop', type=float, default=PARAMETERS['slop'].default,
                        help="largest stamp difference of a pair, s (the node's slop: "
                             f"default {PARAMETERS['slop'].default})")
    parser.add_argument('--output-size', type=image_size(0), default=(0, 0),
                        help="publish at WIDTHxHEIGHT instead of the colour camera's size (the "
                             "node's output_size; default 0x0: the colour's)")
    parser.add_argument('--max-output-pixels', type=int,
                        default=PARAMETERS['max_output_pixels'].default,
                        help="refuse frames whose output grid has more pixels (the node's "
                             'max_output_pixels: default '
                             f"{PARAMETERS['max_output_pixels'].default})")
    alignment = PARAMETERS['alignment']
    parser.add_argument('--alignment', type=one_of(alignment.choices), default=alignment.default,
                        help="the node's alignment: 'auto' (find where the depth sits against "
                             "the colour from their edges and move it back), 'fixed' (move it "
                             f"by --alignment-offset) or 'off' (default {alignment.default})")
    parser.add_argument('--alignment-offset', type=numbers(float, low=-1000, high=1000),
                        default=[0.0, 0.0],
                        help='with --alignment fixed: RIGHT,DOWN output pixels by which the '
                             "depth sits off the colour image (the node's alignment_offset; "
                             'a negative first value as --alignment-offset=-8,4)')
    max_shift = PARAMETERS['alignment_max_shift'].default
    parser.add_argument('--alignment-max-shift', type=number(float, low=0, high=1000),
                        default=max_shift,
                        help='largest offset --alignment auto searches and applies, output '
                             'pixels, rounded down to whole pixels of the grid matched on (the '
                             f"node's alignment_max_shift: default {max_shift:g})")
    parser.add_argument('--points', action='store_true', help='also write /depth_sr/points')
    parser.add_argument('--copy-inputs', action='store_true',
                        help='copy every input topic into the output')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'),
                        help="output storage (default: the input's)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--list', action='store_true',
                        help='list the topics and the set that would be used, then stop')
    parser.add_argument('--json', default='', help='also write the summary here as JSON')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if not args.list and not args.output:
        parser.error('--output is required (or --list)')
    if len(args.alignment_offset) != 2:
        parser.error(f'--alignment-offset: two numbers RIGHT,DOWN, not {args.alignment_offset}')
    if args.alignment != 'fixed' and any(args.alignment_offset):
        parser.error('--alignment-offset is for --alignment fixed')
    for name in ('slop', 'max_output_pixels', 'output_size'):  # the node's rules for them
        problem = check_value(name, getattr(args, name))
        if problem:
            parser.error(f"--{name.replace('_', '-')}: {problem}")
    return args


@interruptible('depth_sr_bag')
def main(argv=None):
    """Entry point of depth_sr_bag."""
    args = parse_args(argv)
    try:
        if args.list:
            with open_bag(args.input) as (reader, note):
                for topic, kind, count in topic_table(reader):
                    print(f'{topic}  {kind}  {count}')
                sets = candidate_sets(reader)
                if len(sets) == 1:
                    print('would use: ' + ' '.join(sets[0]))
                else:  # each set, to give as --depth, --color, --depth-info, --color-info
                    print(f'would use: none automatically ({len(sets)} candidate sets'
                          f'{")" if not sets else "):"}')
                    for topics in sets:
                        print('  ' + ' '.join(topics))
                if note:
                    print(f'note: {note}')
            return 0
        summary = process_bag(args, progress=not args.no_progress)
    except BagError as error:
        print(f'depth_sr_bag: {error}', file=sys.stderr)
        return 2
    print('\n'.join(summary.lines()))
    if args.json:
        write_text_atomically(args.json, json.dumps(summary.as_dict(), indent=1))
    if summary.interrupted:
        return 130
    if summary.failed:  # the output holds the rest; a script should still notice
        print(f'depth_sr_bag: {summary.failed} frames failed (see skipped); the output holds '
              'the others', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
