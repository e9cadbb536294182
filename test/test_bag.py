"""depth_sr_bag: small bags written with rosbags, processed, read back and compared."""

import json
import os

from depth_sr_ros.bags import candidate_sets, tf_static_message
from depth_sr_ros.cli import bag as bag_module
from depth_sr_ros.cli.bag import main
from depth_sr_ros.data.scene import COLOR_FRAME, DEPTH_FRAME, make_scene, render_rig, RIGS
from depth_sr_ros.geometry.transform import Transform
from depth_sr_ros.inference import load_predictor
from depth_sr_ros.ros.conversions import camera_info_message, image_message, metres_to_image
from depth_sr_ros.ros.pipeline import FrameProcessor, Settings
from node_graph import make_pair
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import CameraInfo, Image

STORE = get_typestore(Stores.ROS2_HUMBLE)
TOPICS = ('/camera/depth/image_raw', '/camera/color/image_raw', '/camera/depth/camera_info',
          '/camera/color/camera_info')
KINDS = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo',
         'sensor_msgs/msg/CameraInfo')
PERIOD = 33_000_000


def _tf_static(values, parent, child):
    return tf_static_message(STORE, [(parent, child, values)])


def write_bag(path, frames, storage='mcap', tf_static=()):
    """Write [(depth, colour, depth_info, colour_info)] messages, 30 Hz, colour first."""
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9 if storage == 'mcap' else 8, storage_plugin=plugin) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        if tf_static:
            tf = writer.add_connection('/tf_static', 'tf2_msgs/msg/TFMessage', typestore=STORE)
            for i, message in enumerate(tf_static):
                writer.write(tf, 1 + i, message)
        for i, messages in enumerate(frames):
            for j, index in enumerate((3, 1, 2, 0)):
                writer.write(connections[index], 1_000_000_000 + i * PERIOD + j * 1000,
                             serialize_message(messages[index]))


def read_bag(path):
    """Return {topic: [(receive time, message)]} of an output bag."""
    kinds = {'/depth_sr/image': Image, '/depth_sr/camera_info': CameraInfo}
    out = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            kind = kinds.get(connection.topic)
            if kind is not None:
                out.setdefault(connection.topic, []).append(
                    (timestamp, deserialize_message(bytes(raw), kind)))
            else:
                out.setdefault(connection.topic, []).append((timestamp, None))
    return out


def fixture_frames(count):
    frames = []
    for i in range(count):
        depth, color, _, _, (depth_info, color_info) = make_pair(1_000_000_000 + i * PERIOD)
        for msg in (depth_info, color_info):
            msg.header.stamp = depth.header.stamp
        frames.append((depth, color, depth_info, color_info))
    return frames


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_bag_gives_the_frame_processors_result_for_every_pair(tmp_path, model_path, storage,
                                                                capsys):
    frames = fixture_frames(5)
    write_bag(tmp_path / 'in', frames, storage)
    summary = tmp_path / 'summary.json'
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress', '--copy-inputs',
                 '--json', str(summary)]) == 0
    out = read_bag(tmp_path / 'out')
    images, infos = out['/depth_sr/image'], out['/depth_sr/camera_info']
    assert len(images) == len(infos) == 5
    assert all(len(out[t]) == 5 for t in TOPICS)  # --copy-inputs
    processor = FrameProcessor(load_predictor(model_path, device='cpu'))
    for (timestamp, image), (_, info), (depth, color, depth_info, color_info) in zip(
            images, infos, frames):
        expected = processor.process(depth, color, depth_info, color_info, Settings())
        assert image.header == expected.depth.header == info.header
        assert (image.encoding, image.width, image.height) == ('16UC1', 160, 120)
        assert bytes(image.data) == bytes(expected.depth.data)
        assert list(info.k) == list(expected.camera_info.k)
    report = json.loads(summary.read_text())
    assert report['pairs'] == report['written'] == 5 and report['skipped'] == {}
    assert 'pairs found: 5, outputs written: 5' in capsys.readouterr().out
    assert bag_module.input_storage(tmp_path / 'out') == storage
    with Reader(tmp_path / 'out') as reader:  # no empty points topic without --points
        assert '/depth_sr/points' not in {c.topic for c in reader.connections}


def test_the_alignment_options_are_the_nodes(tmp_path, model_path, capsys):
    # The bag tool had the node's alignment on 'auto' with no way to fix or switch it off.
    frames = fixture_frames(2)
    write_bag(tmp_path / 'in', frames)
    common = ['--input', str(tmp_path / 'in'), '--model', model_path, '--device', 'cpu',
              '--no-progress']
    assert main(common + ['--output', str(tmp_path / 'auto')]) == 0
    assert 'alignment at the end: no move' in capsys.readouterr().out
    assert main(common + ['--output', str(tmp_path / 'fixed'), '--alignment', 'fixed',
                          '--alignment-offset', '8,-4']) == 0
    fixed = read_bag(tmp_path / 'fixed')['/depth_sr/image']
    processor = FrameProcessor(load_predictor(model_path, device='cpu'))
    settings = Settings(alignment='fixed', alignment_offset=[8.0, -4.0])
    for (_, image), (depth, color, depth_info, color_info) in zip(fixed, frames):
        expected = processor.process(depth, color, depth_info, color_info, settings)
        assert bytes(image.data) == bytes(expected.depth.data)
    assert bytes(fixed[0][1].data) != bytes(read_bag(tmp_path / 'auto')['/depth_sr/image'][0][
        1].data)
    with pytest.raises(SystemExit) as refused:
        main(common + ['--output', str(tmp_path / 'x'), '--alignment-offset', '8,-4'])
    assert refused.value.code == 2
    assert '--alignment-offset is for --alignment fixed' in capsys.readouterr().err


def test_list_names_the_topic_set_it_would_use_or_every_candidate(tmp_path, model_path,
                                                                  capsys):
    write_bag(tmp_path / 'in', fixture_frames(1))
    assert main(['--input', str(tmp_path / 'in'), '--list']) == 0
    assert f"would use: {' '.join(TOPICS)}" in capsys.readouterr().out
    # An output with its inputs copied holds the node's output too, which is never an input.
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--copy-inputs']) == 0
    capsys.readouterr()
    assert main(['--input', str(tmp_path / 'out'), '--list']) == 0
    assert f"would use: {' '.join(TOPICS)}" in capsys.readouterr().out
    # Two cameras: each camera's depth with its own colour (not the other camera's).
    second = _two_camera_bag(tmp_path / 'two')
    assert main(['--input', str(tmp_path / 'two'), '--list']) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index('would use: none automatically (2 candidate sets):')
    assert set(lines[at + 1:at + 3]) == {'  ' + ' '.join(TOPICS), '  ' + ' '.join(second)}


def _two_camera_bag(path, frames=2):
    """Write a bag of two cameras' sets, TOPICS and /camera2/...; return the second's topics."""
    second = tuple(topic.replace('/camera/', '/camera2/') for topic in TOPICS)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topics in (TOPICS, second):
            connections = [writer.add_connection(t, k, typestore=STORE)
                           for t, k in zip(topics, KINDS)]
            for i, frame in enumerate(fixture_frames(frames)):
                for index, msg in enumerate(frame):
                    writer.write(connections[index], 1000 + 10 * i + index,
                                 serialize_message(msg))
    return second


def _reader_of(topics):
    """Return a stand-in for a rosbags Reader: its connections, (topic, type, count) each."""
    from types import SimpleNamespace
    return SimpleNamespace(connections=[SimpleNamespace(topic=t, msgtype=k, msgcount=n)
                                        for t, k, n in topics])


def test_the_topic_set_leaves_out_empty_transports_colour_on_the_depth_grid_and_outputs():
    image, info, compressed = (f'sensor_msgs/msg/{k}'
                               for k in ('Image', 'CameraInfo', 'CompressedImage'))
    # `ros2 bag record -a` beside image_transport: every transport of both images, the ones
    # that cannot hold the image (jpeg depth, compressedDepth colour) without a message.
    recorded = _reader_of([
        ('/cam/color/image_raw/compressed', compressed, 30),
        ('/cam/color/image_raw/compressedDepth', compressed, 0),
        ('/cam/depth/image_raw/compressed', compressed, 0),
        ('/cam/depth/image_raw/compressedDepth', compressed, 30),
        ('/cam/color/camera_info', info, 30), ('/cam/depth/camera_info', info, 30),
        ('/depth_sr/image', image, 30), ('/depth_sr/camera_info', info, 30)])  # a node's
    assert candidate_sets(recorded) == [(
        '/cam/depth/image_raw/compressedDepth', '/cam/color/image_raw/compressed',
        '/cam/depth/camera_info', '/cam/color/camera_info')]
    # Azure Kinect: rgb_to_depth is colour on the depth camera's grid, not depth.
    kinect = _reader_of([(f'/{name}/{kind}', t, 10) for name in
                         ('depth', 'rgb', 'depth_to_rgb', 'rgb_to_depth')
                         for kind, t in (('image_raw', image), ('camera_info', info))])
    assert sorted(depth for depth, *_ in candidate_sets(kinect)) == [
        '/depth/image_raw', '/depth_to_rgb/image_raw']
    # A RealSense beside a camera recorded without its colour: the lone depth has no partner
    # in another camera's namespace; both of the RealSense's depth images pair with its colour.
    realsense = _reader_of([(f'/{topic}/{kind}', t, 10) for topic in
                            ('camera/camera/color', 'camera/camera/depth',
                             'camera/camera/aligned_depth_to_color', 'tof/depth')
                            for kind, t in (('image_raw', image), ('camera_info', info))])
    assert sorted(depth for depth, *_ in candidate_sets(realsense)) == [
        '/camera/camera/aligned_depth_to_color/image_raw', '/camera/camera/depth/image_raw']
    # A Luxonis OAK-D (depthai-ros): its depth is /oak/stereo/image_raw; the mono cameras are
    # neither depth nor colour.
    oak = _reader_of([(f'/oak/{name}/{kind}', t, 10) for name in ('stereo', 'rgb', 'left')
                      for kind, t in (('image_raw', image), ('camera_info', info))])
    assert candidate_sets(oak) == [('/oak/stereo/image_raw', '/oak/rgb/image_raw',
                                    '/oak/stereo/camera_info', '/oak/rgb/camera_info')]
    # Recorded over a network: the raw colour topic is there, every message on it lost; its
    # compressed transport holds the colour.
    remote = _reader_of([('/cam/color/image_raw', image, 0),
                         ('/cam/color/image_raw/compressed', compressed, 30),
                         ('/cam/depth/image_raw', image, 30),
                         ('/cam/color/camera_info', info, 30),
                         ('/cam/depth/camera_info', info, 30)])
    assert candidate_sets(remote) == [('/cam/depth/image_raw', '/cam/color/image_raw/compressed',
                                       '/cam/depth/camera_info', '/cam/color/camera_info')]


def test_points_are_written_with_the_points_option(tmp_path, model_path):
    write_bag(tmp_path / 'in', fixture_frames(2))
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress', '--points']) == 0
    out = read_bag(tmp_path / 'out')
    assert len(out['/depth_sr/points']) == len(out['/depth_sr/image']) == 2


def test_raw_depth_takes_its_extrinsic_from_the_bags_tf_static(tmp_path, model_path, capsys):
    rig = RIGS['d435']
    frame = render_rig(make_scene(), rig)
    messages = []
    for i in range(2):
        depth = metres_to_image(frame['depth'], '16UC1', Image().header)
        depth.header.frame_id = DEPTH_FRAME
        color = image_message(frame['color'], 'rgb8', COLOR_FRAME)
        infos = camera_info_message(rig.depth, DEPTH_FRAME), camera_info_message(rig.color,
                                                                                 COLOR_FRAME)
        for msg in (depth, color) + infos:
            msg.header.stamp.sec = 1 + i
        messages.append((depth, color) + infos)
    # The transform reaches the colour frame through the camera's base link, as drivers do;
    # the link is turned and moved, so a composition in the wrong order would show.
    link = Transform.from_xyz_quaternion([0.01, 0.02, 0.0, 0.0, 0.0, np.sin(0.15),
                                          np.cos(0.15)])
    depth_in_link = rig.depth_to_color.then(link)
    to_depth = bytes(_tf_static(depth_in_link.to_xyz_quaternion(), 'camera_link',
                                DEPTH_FRAME))
    to_color = bytes(_tf_static(link.to_xyz_quaternion(), 'camera_link', COLOR_FRAME))
    # Without the colour frame's link there is no transform: nothing written, said why.
    write_bag(tmp_path / 'in', messages, tf_static=[to_depth])
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 2
    assert ("no transform from depth frame 'camera_depth_optical_frame' to colour frame "
            "'camera_color_optical_frame': it is not in the bag's /tf_static: give "
            '--depth-to-color') in capsys.readouterr().err
    write_bag(tmp_path / 'in2', messages, tf_static=[to_depth, to_color])
    assert main(['--input', str(tmp_path / 'in2'), '--output', str(tmp_path / 'out2'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    out = read_bag(tmp_path / 'out2')['/depth_sr/image']
    assert len(out) == 2
    image = out[0][1]
    assert (image.width, image.height, image.header.frame_id) == (1280, 720, COLOR_FRAME)
    processor = FrameProcessor(load_predictor(model_path, device='cpu'))
    expected = processor.process(*messages[0][:2], *messages[0][2:], Settings(),
                                 rig.depth_to_color)
    got = np.frombuffer(bytes(image.data), '<u2').astype(int)
    want = np.frombuffer(bytes(expected.depth.data), '<u2').astype(int)
    assert np.abs(got - want).max() <= 1  # the same registration, to the millimetre


@pytest.mark.parametrize('hashed', [True, False], ids=['jazzy', 'humble'])
def test_copy_inputs_keeps_vendor_types_with_the_bags_own_definitions(
        tmp_path, model_path, hashed):
    write_bag(tmp_path / 'in', fixture_frames(2))
    with Writer(tmp_path / 'vendor', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        extrinsics = writer.add_connection(
            '/camera/extrinsics/depth_to_color', 'realsense2_camera_msgs/msg/Extrinsics',
            msgdef='float64[9] rotation\nfloat64[3] translation\n',
            rihs01='RIHS01_' + '0' * 64)
        writer.write(extrinsics, 5, bytes(100))
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        with Reader(tmp_path / 'in') as reader:
            by_topic = {c.topic: connections[TOPICS.index(c.topic)] for c in reader.connections}
            for connection, timestamp, raw in reader.messages():
                writer.write(by_topic[connection.topic], timestamp, raw)
    if not hashed:  # Humble's metadata.yaml has no type hashes; the MCAP file keeps the schema
        import yaml
        path = tmp_path / 'vendor' / 'metadata.yaml'
        metadata = yaml.safe_load(path.read_text())
        for topic in metadata['rosbag2_bagfile_information']['topics_with_message_count']:
            topic['topic_metadata'].pop('type_description_hash')
        path.write_text(yaml.safe_dump(metadata))
        with Reader(tmp_path / 'vendor') as reader:
            assert not any(c.digest for c in reader.connections)
    assert main(['--input', str(tmp_path / 'vendor'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--copy-inputs']) == 0
    with Reader(tmp_path / 'out') as reader:
        copied = {c.topic: c for c in reader.connections}
    vendor = copied['/camera/extrinsics/depth_to_color']
    assert vendor.msgtype == 'realsense2_camera_msgs/msg/Extrinsics' and vendor.msgcount == 1
    assert copied['/depth_sr/image'].msgcount == 2


def test_copy_inputs_never_copies_an_earlier_output_beside_the_new_one(
        tmp_path, model_path, capsys):
    # A bag recorded with -a beside a running node holds its /depth_sr/image, offered with
    # another QoS: rosbags added a second connection, and the output mixed both streams.
    from rosbags.interfaces import (
        Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime)
    write_bag(tmp_path / 'in', fixture_frames(3))
    zero = QosTime(0, 0)
    best_effort = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT,
                      QosDurability.VOLATILE, zero, zero, QosLiveliness.AUTOMATIC, zero, False)
    with Writer(tmp_path / 'live', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        earlier = writer.add_connection('/depth_sr/image', 'sensor_msgs/msg/Image',
                                        typestore=STORE, offered_qos_profiles=[best_effort])
        with Reader(tmp_path / 'in') as reader:
            for connection, timestamp, raw in reader.messages():
                writer.write(connections[TOPICS.index(connection.topic)], timestamp, raw)
                if connection.topic == TOPICS[0]:
                    writer.write(earlier, timestamp + 1, raw)
    assert main(['--input', str(tmp_path / 'live'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--copy-inputs']) == 0
    with Reader(tmp_path / 'out') as reader:
        images = [c for c in reader.connections if c.topic == '/depth_sr/image']
        assert [c.msgcount for c in images] == [3]
        assert {c.topic for c in reader.connections} >= set(TOPICS)
    assert ('not copied: /depth_sr/image (3 messages), which this run writes anew'
            in capsys.readouterr().out)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_a_bag_folder_without_metadata_and_one_whole_file_is_read_as_that_file(
        tmp_path, model_path, capsys, storage):
    # A recorder that did not close (killed, a crash) leaves no metadata.yaml; rosbags reads
    # the folder's one data file, given as a file.
    write_bag(tmp_path / 'in', fixture_frames(2), storage=storage)
    (tmp_path / 'in' / 'metadata.yaml').unlink()
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    out = capsys.readouterr().out
    assert 'outputs written: 2' in out and 'has no metadata.yaml' in out


def test_bad_input_is_one_line_and_exit_2(tmp_path, model_path, capsys):
    def run(*extra):
        status = main(['--model', model_path, '--device', 'cpu', '--no-progress', *extra])
        return status, capsys.readouterr().err
    status, err = run('--input', str(tmp_path / 'nothing'), '--output', str(tmp_path / 'o'))
    assert status == 2 and "input '" in err and 'does not exist' in err
    (tmp_path / 'notabag').mkdir()
    (tmp_path / 'notabag' / 'x.txt').write_text('hello')
    status, err = run('--input', str(tmp_path / 'notabag'), '--output', str(tmp_path / 'o'))
    assert status == 2 and 'is not a readable rosbag2 bag' in err and 'reindex' not in err
    (tmp_path / 'notabag' / 'x_0.mcap').write_bytes(b'not mcap')  # a recording without its
    (tmp_path / 'notabag' / 'x_1.mcap').write_bytes(b'not mcap')  # metadata.yaml
    status, err = run('--input', str(tmp_path / 'notabag'), '--output', str(tmp_path / 'o'))
    assert status == 2 and len(err.strip().splitlines()) == 1 and 'ros2 bag reindex' in err
    write_bag(tmp_path / 'in', fixture_frames(2))
    status, err = run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'),
                      '--depth', '/nope', '--color', TOPICS[1], '--depth-info', TOPICS[2],
                      '--color-info', TOPICS[3])
    assert status == 2 and "topic '/nope' is not in the bag" in err
    status, err = run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'),
                      '--depth', TOPICS[0], '--color', TOPICS[1])
    assert status == 2 and ('give all four of --depth, --color, --depth-info and --color-info '
                            '(the info topics not when their file is given), or none') in err
    status, err = run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'),
                      '--depth', TOPICS[2], '--color', TOPICS[1], '--depth-info', TOPICS[2],
                      '--color-info', TOPICS[3])
    assert status == 2 and ('is sensor_msgs/msg/CameraInfo, not sensor_msgs/msg/Image or '
                            'sensor_msgs/msg/CompressedImage') in err
    assert run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'))[0] == 0
    status, err = run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'))
    assert status == 2 and 'exists (use --overwrite' in err
    assert run('--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'o'),
               '--overwrite')[0] == 0
    frames = fixture_frames(3)
    for _, color, _, _ in frames:
        color.header.stamp.sec += 1  # colour a second after its depth: nothing pairs
    write_bag(tmp_path / 'apart', frames)
    status, err = run('--input', str(tmp_path / 'apart'), '--output', str(tmp_path / 'o3'))
    assert status == 2 and 'no depth/colour pairs: 3 depth and 3 colour messages' in err


@pytest.mark.parametrize('given', ['folder', 'mcap_file', 'folder_without_metadata'])
def test_a_bag_cut_short_is_processed_up_to_the_cut(tmp_path, model_path, capsys, given):
    # A recorder killed mid-write leaves an MCAP file with no summary, no footer and its last
    # record incomplete. What was complete is processed, and the summary says what was lost.
    write_bag(tmp_path / 'in', fixture_frames(30))
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'whole'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    mcap, = [f for f in os.listdir(tmp_path / 'in') if f.endswith('.mcap')]
    data = (tmp_path / 'in' / mcap).read_bytes()
    cut = data[:len(data) * 2 // 3]
    (tmp_path / 'in' / mcap).write_bytes(cut)
    source = tmp_path / 'in' / mcap if given == 'mcap_file' else tmp_path / 'in'
    if given == 'folder_without_metadata':  # a killed recorder writes none
        os.remove(tmp_path / 'in' / 'metadata.yaml')
    capsys.readouterr()
    status = main(['--input', str(source), '--output', str(tmp_path / 'out'),
                   '--model', model_path, '--device', 'cpu', '--no-progress'])
    out = capsys.readouterr().out
    assert status == 0, out
    assert (f'{mcap} is cut short: its complete records (the first ' in out
            and f'of {len(cut)} bytes) were read, the rest is lost' in out), out
    images = read_bag(tmp_path / 'out')['/depth_sr/image']
    whole = read_bag(tmp_path / 'whole')['/depth_sr/image']
    assert 0 < len(images) < len(whole)
    for (t, msg), (t_whole, msg_whole) in zip(images, whole):  # the part before the cut
        assert t == t_whole and msg.header == msg_whole.header
        assert bytes(msg.data) == bytes(msg_whole.data)
    assert (tmp_path / 'in' / mcap).read_bytes() == cut  # the input is left as it was


def test_an_interrupted_run_leaves_a_readable_bag_with_the_pairs_done(
        tmp_path, model_path, monkeypatch, capsys):
    write_bag(tmp_path / 'in', fixture_frames(6))
    real = bag_module._process_pair
    calls = []

    def interrupt_at_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(*args)
    monkeypatch.setattr(bag_module, '_process_pair', interrupt_at_the_fourth)
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 130
    assert 'interrupted: the output holds the 3 outputs written so far' in capsys.readouterr().out
    assert len(read_bag(tmp_path / 'out')['/depth_sr/image']) == 3


@pytest.mark.parametrize('stamps', ['fresh', 'original'])
def test_the_player_plays_a_bag_to_the_live_node(tmp_path, graph, stamps):
    from depth_sr_ros.tools.player import Player
    from rclpy.parameter import Parameter
    write_bag(tmp_path / 'in', fixture_frames(4))
    g = graph()
    player = Player(context=g.context, parameter_overrides=[
        Parameter('bag', value=str(tmp_path / 'in')), Parameter('bag_stamps', value=stamps)])
    g.executor.add_node(player)
    try:
        outputs = g.wait_for('image', 3, timeout=60.0)
        assert len(outputs) >= 3, g.node.counts
        stamps_out = [o.header.stamp.sec * 10**9 + o.header.stamp.nanosec for o in outputs]
        recorded = 1_000_000_000  # the fixture frames' first stamp
        if stamps == 'original':
            assert all(recorded <= s < recorded + 4 * PERIOD for s in stamps_out)
        else:
            assert all(s > 10 * recorded for s in stamps_out)  # now, not 1970
        assert (outputs[0].width, outputs[0].height) == (160, 120)
    finally:
        g.executor.remove_node(player)
        player.destroy_node()


def test_the_player_takes_the_bags_topics_when_it_holds_two_sets(tmp_path):
    # Two cameras in one bag: the player named depth_sr_bag's options, which it does not
    # have, and could not play it.
    from depth_sr_ros.bags import BagError
    from depth_sr_ros.ros.recording import read_recording
    _two_camera_bag(tmp_path / 'two')
    with pytest.raises(BagError, match='2 plausible .* give bag_depth, bag_color, '
                                       'bag_depth_info and bag_color_info'):
        read_recording(str(tmp_path / 'two'))
    # Some of them given: the player has no camera_info files to stand in for an info topic.
    with pytest.raises(BagError) as partial:
        read_recording(str(tmp_path / 'two'), topics=TOPICS[:2] + ('', ''))
    assert str(partial.value) == ('give all four of bag_depth, bag_color, bag_depth_info and '
                                  'bag_color_info, or none of them')
    recording, topics, _ = read_recording(str(tmp_path / 'two'), topics=TOPICS)
    assert topics == TOPICS and len(recording) == 8
    assert [type(entry.message()) for entry in recording] == [
        (Image, Image, CameraInfo, CameraInfo)[entry[1]] for entry in recording]


def _tree(path):
    """Return {relative file path: bytes} of a folder."""
    return {os.path.relpath(os.path.join(folder, name), path):
            open(os.path.join(folder, name), 'rb').read()
            for folder, _, names in os.walk(path) for name in names}


def test_the_output_is_never_the_input_however_it_is_spelled(tmp_path, model_path, capsys,
                                                             monkeypatch):
    write_bag(tmp_path / 'rec', fixture_frames(2))
    before = _tree(tmp_path / 'rec')
    os.symlink(tmp_path / 'rec', tmp_path / 'link')
    monkeypatch.chdir(tmp_path)
    for output, said in (('rec', 'is the input'), ('./rec/', 'is the input'),
                         ('link', 'is the input'), ('rec/inner', 'lies inside the input'),
                         ('.', 'contains the input')):
        status = main(['--input', 'rec', '--output', output, '--overwrite', '--model',
                       model_path, '--device', 'cpu', '--no-progress'])
        err = capsys.readouterr().err
        assert status == 2 and said in err and len(err.splitlines()) == 1, (output, err)
    assert _tree(tmp_path / 'rec') == before  # the recording is untouched


def test_overwrite_replaces_the_output_only_with_a_complete_one(tmp_path, model_path, capsys):
    write_bag(tmp_path / 'in', fixture_frames(2))
    args = ['--model', model_path, '--device', 'cpu', '--no-progress', '--overwrite']
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')] + args) == 0
    first = _tree(tmp_path / 'out')
    # A run that fails (nothing pairs) leaves the old output as it was, and no scratch.
    frames = fixture_frames(3)
    for _, color, _, _ in frames:
        color.header.stamp.sec += 1
    write_bag(tmp_path / 'apart', frames)
    assert main(['--input', str(tmp_path / 'apart'), '--output', str(tmp_path / 'out')]
                + args) == 2
    assert _tree(tmp_path / 'out') == first
    assert sorted(os.listdir(tmp_path)) == ['apart', 'in', 'out']
    # A run that succeeds replaces it.
    write_bag(tmp_path / 'three', fixture_frames(3))
    assert main(['--input', str(tmp_path / 'three'), '--output', str(tmp_path / 'out')]
                + args) == 0
    assert len(read_bag(tmp_path / 'out')['/depth_sr/image']) == 3
    assert sorted(os.listdir(tmp_path)) == ['apart', 'in', 'out', 'three']


def test_unwritable_paths_and_bad_numbers_are_one_line_before_any_work(
        tmp_path, model_path, capsys):
    write_bag(tmp_path / 'in', fixture_frames(2))
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    base = ['--input', str(tmp_path / 'in'), '--model', model_path, '--device', 'cpu',
            '--no-progress']
    cases = [
        (['--output', str(tmp_path / 'missing' / 'out')], 'does not exist'),
        (['--output', str(tmp_path / 'out'), '--json', str(tmp_path / 'missing' / 's.json')],
         "--json '"),
        # each used to fail with a traceback after every pair was processed
        (['--output', str(tmp_path / 'out'), '--json', str(tmp_path / 'out')],
         'would be written into the output bag'),
        (['--output', str(tmp_path / 'out'), '--json', str(locked)], 'is a folder, not a file'),
        (['--output', str(tmp_path / 'out'), '--json', str(tmp_path / 'in' / 's.json')],
         'lies inside the input'),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((['--output', str(locked / 'out')], 'cannot be written'))
    for extra, said in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / 'out').exists()  # refused before any work
    for slop in ('-1', '0'):  # the node's rule: slop within [0.001, ...]
        with pytest.raises(SystemExit) as exit_info:
            main(base + ['--output', str(tmp_path / 'out'), '--slop', slop])
        assert exit_info.value.code == 2
        assert 'slop must be within' in capsys.readouterr().err
    # The node's output_size rules: one side 0 used to be ignored (the colour's size served).
    with pytest.raises(SystemExit) as exit_info:
        main(base + ['--output', str(tmp_path / 'out'), '--output-size', '10x0'])
    assert exit_info.value.code == 2
    assert 'output_size must be [0, 0] (the colour size) or two sizes above 0' in (
        capsys.readouterr().err)
    assert main(base + ['--output', str(tmp_path / 'out'), '--output-size', '1x1']) == 2
    assert '--output-size: output_size 1x1: each side at least the scale' in (
        capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


def test_a_camera_info_written_just_after_its_image_is_matched_by_stamp(
        tmp_path, model_path, capsys):
    # Each frame's camera_infos are written after its images and carry the image's stamp:
    # the first pair is served with its own camera_info, not skipped for want of one.
    frames = fixture_frames(3)
    plugin = StoragePlugin.MCAP
    with Writer(tmp_path / 'late', version=9, storage_plugin=plugin) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        for i, messages in enumerate(frames):
            for j, index in enumerate((1, 0, 3, 2)):  # colour, depth, then their infos
                writer.write(connections[index], 1_000_000_000 + i * PERIOD + j * 1000,
                             serialize_message(messages[index]))
    assert main(['--input', str(tmp_path / 'late'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    assert 'outputs written: 3' in capsys.readouterr().out
    assert len(read_bag(tmp_path / 'out')['/depth_sr/image']) == 3


def _stamped(msg, stamp_ns):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


def test_colour_recorded_late_beside_faster_depth_still_finds_its_depth(
        tmp_path, model_path, capsys):
    # Depth at 90 Hz, colour at 30 Hz recorded 130 ms after its stamp (a driver's latency),
    # each colour stamped within a millisecond of a depth. The node's queue of 10 held 111 ms
    # of depth: 3 of 30 pairs were written, the rest blamed on the slop.
    step = 11_111_111
    messages = []  # (receive time, topic index, message)
    for k in range(90):
        depth, color, _, _, (depth_info, color_info) = make_pair(1_000_000_000 + k * step)
        depth_stamp = 1_000_000_000 + k * step
        messages += [(depth_stamp + 3_000_000, 0, depth),
                     (depth_stamp + 3_000_001, 2, _stamped(depth_info, depth_stamp))]
        if k % 3 == 0:
            color_stamp = depth_stamp + 500_000
            messages += [(color_stamp + 130_000_000, 1, _stamped(color, color_stamp)),
                         (color_stamp + 130_000_001, 3, _stamped(color_info, color_stamp))]
    with Writer(tmp_path / 'rates', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        for received, index, msg in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[index], received, serialize_message(msg))
    assert main(['--input', str(tmp_path / 'rates'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    assert 'outputs written: 30' in capsys.readouterr().out


def test_a_slop_over_a_second_pairs_streams_that_far_apart(tmp_path, model_path, capsys):
    # Depth and colour from clocks 1.5 s apart: --slop 2 must pair them. The queues dropped
    # every message over a second older than the newest, so none ever paired.
    messages = []
    for k in range(6):
        depth, color, _, _, (depth_info, color_info) = make_pair(5_000_000_000 + k * PERIOD)
        depth_stamp, color_stamp = 5_000_000_000 + k * PERIOD, 6_500_000_000 + k * PERIOD
        messages += [(depth_stamp, 0, _stamped(depth, depth_stamp)),
                     (depth_stamp + 1, 2, _stamped(depth_info, depth_stamp)),
                     (depth_stamp + 2, 1, _stamped(color, color_stamp)),
                     (depth_stamp + 3, 3, _stamped(color_info, color_stamp))]
    with Writer(tmp_path / 'apart', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        for received, index, msg in messages:
            writer.write(connections[index], received, serialize_message(msg))
    assert main(['--input', str(tmp_path / 'apart'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--slop', '2']) == 0
    assert 'outputs written: 6' in capsys.readouterr().out


def test_each_image_takes_the_camera_info_of_its_time_when_the_calibration_changes(
        tmp_path, model_path):
    # Camera_infos stamped a millisecond after their images, the colour's focal length
    # changed from frame 3 on: frames 0-2 keep the old one (they took the bag's last one).
    frames = fixture_frames(6)
    for i, (_, _, depth_info, color_info) in enumerate(frames):
        for info in (depth_info, color_info):
            _stamped(info, 1_000_000_000 + i * PERIOD + 1_000_000)
        if i >= 3:
            color_info.k[0] = color_info.k[4] = 150.0
    write_bag(tmp_path / 'change', frames)
    assert main(['--input', str(tmp_path / 'change'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    infos = [msg for _, msg in read_bag(tmp_path / 'out')['/depth_sr/camera_info']]
    assert [info.k[0] for info in infos] == [200.0] * 3 + [150.0] * 3


def test_compressed_colour_and_compressed_depth_give_what_the_raw_images_give(
        tmp_path, model_path, capsys):
    # As drivers are often recorded: colour through image_transport's compressed (png here,
    # lossless), depth through compressedDepth, each beside its raw topic's camera_info.
    import cv2
    from depth_sr_ros.ros.conversions import COMPRESSED_DEPTH_HEADER, image_to_array
    from sensor_msgs.msg import CompressedImage
    frames = fixture_frames(3)
    write_bag(tmp_path / 'raw', frames)
    topics = (TOPICS[0] + '/compressedDepth', TOPICS[1] + '/compressed', *TOPICS[2:])
    kinds = ('sensor_msgs/msg/CompressedImage',) * 2 + KINDS[2:]
    with Writer(tmp_path / 'packed', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(topics, kinds)]
        for i, (depth, color, depth_info, color_info) in enumerate(frames):
            rgb = image_to_array(color)
            packed_color = CompressedImage(header=color.header, format='rgb8; png compressed bgr8',
                                           data=cv2.imencode('.png', rgb[..., ::-1])[1].tobytes())
            packed_depth = CompressedImage(
                header=depth.header, format='16UC1; compressedDepth png',
                data=COMPRESSED_DEPTH_HEADER.pack(0, 0.0, 0.0) + cv2.imencode(
                    '.png', image_to_array(depth))[1].tobytes())
            for j, (index, msg) in enumerate(((3, color_info), (1, packed_color),
                                              (2, depth_info), (0, packed_depth))):
                writer.write(connections[index], 1_000_000_000 + i * PERIOD + j * 1000,
                             serialize_message(msg))
    assert main(['--input', str(tmp_path / 'packed'), '--list']) == 0
    assert 'would use: ' + ' '.join(topics) in capsys.readouterr().out
    for name in ('raw', 'packed'):
        assert main(['--input', str(tmp_path / name), '--output', str(tmp_path / f'{name}_sr'),
                     '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    raw, packed = (read_bag(tmp_path / f'{name}_sr')['/depth_sr/image']
                   for name in ('raw', 'packed'))
    assert len(raw) == len(packed) == 3
    for (_, a), (_, b) in zip(raw, packed):
        np.testing.assert_array_equal(image_to_array(a), image_to_array(b))
    # The player replays the same bag (it read each compressed image as a raw one and failed
    # to deserialize it): decoded, the images are the raw bag's.
    from depth_sr_ros.ros.recording import read_recording
    recorded = {name: read_recording(str(tmp_path / name))[0] for name in ('raw', 'packed')}
    for index in (0, 1):
        a, b = ([entry.message() for entry in recorded[name] if entry[1] == index]
                for name in ('raw', 'packed'))
        assert len(a) == len(b) == 3
        for raw_image, decoded in zip(a, b):
            pixels = image_to_array(decoded)
            if decoded.encoding == 'bgr8':
                pixels = pixels[..., ::-1]
            np.testing.assert_array_equal(pixels, image_to_array(raw_image))


def test_a_bag_without_camera_info_takes_calibration_files(tmp_path, model_path, capsys):
    # Only the images are recorded; the two cameras' calibration files (camera_calibration's
    # YAML) stand in for the camera_info topics.
    frames = fixture_frames(3)
    with Writer(tmp_path / 'bare', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS[:2], KINDS[:2])]
        for i, messages in enumerate(frames):
            for j in (1, 0):
                writer.write(connections[j], 1_000_000_000 + i * PERIOD + j * 1000,
                             serialize_message(messages[j]))
    files = []
    for name, info in (('depth', frames[0][2]), ('color', frames[0][3])):
        path = tmp_path / f'{name}.yaml'
        path.write_text(
            f'image_width: {info.width}\nimage_height: {info.height}\ncamera_name: {name}\n'
            f'camera_matrix:\n  rows: 3\n  cols: 3\n  data: {[float(v) for v in info.k]}\n'
            'distortion_model: plumb_bob\n'
            f'distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: {[0.0] * 5}\n')
        files.append(str(path))
    base = ['--input', str(tmp_path / 'bare'), '--model', model_path, '--device', 'cpu',
            '--no-progress']
    assert main(base + ['--output', str(tmp_path / 'none')]) == 2  # no camera_info: no set
    assert 'plausible depth/colour/camera_info sets' in capsys.readouterr().err
    assert main(base + ['--output', str(tmp_path / 'out'), '--depth-info-file', files[0],
                        '--color-info-file', files[1]]) == 0
    assert 'outputs written: 3' in capsys.readouterr().out
    info = read_bag(tmp_path / 'out')['/depth_sr/camera_info'][0][1]
    assert (info.width, info.height) == (frames[0][3].width, frames[0][3].height)
    (tmp_path / 'broken.yaml').write_text('image_width: 4\n')
    assert main(base + ['--output', str(tmp_path / 'out2'), '--depth-info-file',
                        str(tmp_path / 'broken.yaml'), '--color-info-file', files[1]]) == 2
    err = capsys.readouterr().err
    assert 'broken.yaml' in err and len(err.splitlines()) == 1


def test_a_ros1_bags_slashed_frames_still_give_the_player_its_extrinsic(tmp_path):
    # ROS 1 bags keep a leading '/' in frame ids and /tf_static: the player's reader looked the
    # tree up with the raw names and found no depth-to-colour transform.
    from depth_sr_ros.ros.recording import read_recording
    frames = fixture_frames(1)
    for msg in frames[0]:
        msg.header.frame_id = '/camera_depth_optical_frame'
    frames[0][1].header.frame_id = frames[0][3].header.frame_id = '/camera_color_optical_frame'
    moved = [0.015, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    write_bag(tmp_path / 'in', frames, tf_static=[bytes(_tf_static(
        moved, '/camera_color_optical_frame', '/camera_depth_optical_frame'))])
    assert read_recording(str(tmp_path / 'in'))[2] == pytest.approx(moved)


def test_the_rig_bags_transform_tree_follows_rep_103_and_gives_the_rigs_extrinsic(tmp_path):
    # camera_link in body axes (x forward, z up), the optical frames below it: the colour
    # camera's forward axis (optical z) is the link's x, its down (optical y) the link's -z.
    from depth_sr_ros.bags import read_static_transforms
    from depth_sr_ros.data.scene import rig_extrinsic
    from depth_sr_ros.ros.extrinsics import static_transform
    from depth_sr_ros.tools.rig_bag import write_rig_bag
    write_rig_bag(str(tmp_path / 'bag'), 'tof', 1)
    with Reader(tmp_path / 'bag') as reader:
        edges = read_static_transforms(reader)
    assert set(edges) == {('camera_link', COLOR_FRAME), ('camera_link', DEPTH_FRAME)}
    color_in_link = edges[('camera_link', COLOR_FRAME)]
    np.testing.assert_allclose(color_in_link.apply([[0, 0, 1], [0, 1, 0], [1, 0, 0]]),
                               [[1, 0, 0], [0, 0, -1], [0, -1, 0]], atol=1e-12)
    depth_to_color = static_transform(edges, COLOR_FRAME, DEPTH_FRAME)
    np.testing.assert_allclose(depth_to_color.to_xyz_quaternion(), rig_extrinsic('tof'),
                               atol=1e-9)


def test_the_rig_bag_tool_replaces_its_output_only_with_overwrite(tmp_path, capsys):
    from depth_sr_ros.tools import rig_bag
    out = str(tmp_path / 'bag')
    argv = ['--rig', 'tof', '--frames', '1', '--output', out]
    assert rig_bag.main(argv) == 0
    first = os.stat(out).st_ino, sorted(os.listdir(out))
    # /tf_static as tf2 offers it, so that `ros2 bag play` replays it latched.
    from rosbags.interfaces import QosDurability
    with Reader(out) as reader:
        tf, = [c for c in reader.connections if c.topic == '/tf_static']
        qos, = tf.ext.offered_qos_profiles
    assert qos.durability == QosDurability.TRANSIENT_LOCAL and qos.depth == 1
    assert rig_bag.main(argv) == 2
    assert 'exists (use --overwrite to replace it)' in capsys.readouterr().err
    assert (os.stat(out).st_ino, sorted(os.listdir(out))) == first  # left as it was
    assert rig_bag.main(argv + ['--overwrite']) == 0
    assert os.stat(out).st_ino != first[0]  # a new folder moved into place
    assert sorted(os.listdir(out)) == first[1]


def _damaged_at(frame, real):
    """Return a stand-in for open_bag whose reader raises at write_bag's ``frame``, each pass."""
    import contextlib

    @contextlib.contextmanager
    def damaged(*args, **kwargs):
        with real(*args, **kwargs) as (reader, note):
            whole = reader.messages

            def messages(*a, **k):
                for item in whole(*a, **k):
                    if item[1] >= 1_000_000_000 + frame * PERIOD:
                        raise ValueError('chunk CRC mismatch')
                    yield item
            reader.messages = messages
            yield reader, note
    return damaged


def test_a_damaged_part_mid_bag_counts_what_was_not_read(tmp_path, model_path, monkeypatch):
    # A chunk with a wrong CRC in a whole bag: rosbags stops there. The run keeps what came
    # before and counts every message after it, which it did not reach.
    write_bag(tmp_path / 'in', fixture_frames(10))
    monkeypatch.setattr(bag_module, 'open_bag', _damaged_at(4, bag_module.open_bag))
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress', '--json',
                 str(tmp_path / 'summary.json')]) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['written'] == 4  # four frames of four messages
    not_read = [n for reason, n in summary['skipped'].items() if reason.startswith(
        'messages not read: reading stopped at a damaged or cut part')]
    assert not_read == [40 - 16]
    notes = [n for n in summary['notes'] if 'chunk CRC mismatch' in n]
    assert len(notes) == 1  # the camera_info pass stops there too: said once


def test_a_failed_frame_is_counted_the_rest_written_and_the_exit_status_says_so(
        tmp_path, model_path, monkeypatch, capsys):
    # Out of GPU memory on one frame: the node skips that frame, and so does the bag tool,
    # where the run, and every output written so far, had ended in a traceback.
    write_bag(tmp_path / 'in', fixture_frames(4))
    real = FrameProcessor.process_pair
    calls = []

    def fail_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return real(self, *args, **kwargs)
    monkeypatch.setattr(FrameProcessor, 'process_pair', fail_once)
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress', '--json',
                 str(tmp_path / 'summary.json')]) == 1
    assert ('1 frames failed (see skipped); the output holds the others'
            in capsys.readouterr().err)
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['pairs'] == 4 and summary['written'] == 3
    assert summary['skipped'] == {
        'failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB': 1}
    assert len(read_bag(tmp_path / 'out')['/depth_sr/image']) == 3


def test_ctrl_c_in_a_frame_counts_that_pair_and_no_damage(tmp_path, model_path, monkeypatch):
    # The camera_info pass reads on to a damaged part the image pass never reaches: an
    # interrupted run must not count what it left unread as lost to damage.
    write_bag(tmp_path / 'in', fixture_frames(10))
    monkeypatch.setattr(bag_module, 'open_bag', _damaged_at(8, bag_module.open_bag))
    real = FrameProcessor.process_pair
    calls = []

    def interrupt_at_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    monkeypatch.setattr(FrameProcessor, 'process_pair', interrupt_at_the_third)
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress', '--json',
                 str(tmp_path / 'summary.json')]) == 130
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['pairs'] == 3 and summary['written'] == 2
    assert summary['skipped'] == {'the pair in progress at Ctrl-C': 1}
    assert not [n for n in summary['notes'] if 'damaged' in n]


def test_a_calibration_file_and_its_info_topic_both_given_are_refused(tmp_path, model_path,
                                                                      capsys):
    # The bag's camera_info, matched by stamp, always won over the file's: the file was
    # silently unused.
    frames = fixture_frames(2)
    write_bag(tmp_path / 'in', frames)
    path = tmp_path / 'color.yaml'
    info = frames[0][3]
    path.write_text(
        f'image_width: {info.width}\nimage_height: {info.height}\ncamera_name: c\n'
        f'camera_matrix:\n  rows: 3\n  cols: 3\n  data: {[float(v) for v in info.k]}\n')
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--depth', TOPICS[0], '--color', TOPICS[1], '--depth-info', TOPICS[2],
                 '--color-info', TOPICS[3], '--color-info-file', str(path)]) == 2
    assert (f"--color-info '{TOPICS[3]}' and a calibration file both give that camera_info"
            in capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


def test_copy_inputs_keeps_an_earlier_points_topic_this_run_does_not_write(
        tmp_path, model_path, capsys):
    write_bag(tmp_path / 'in', fixture_frames(2))
    with Writer(tmp_path / 'live', version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = [writer.add_connection(t, k, typestore=STORE)
                       for t, k in zip(TOPICS, KINDS)]
        points = writer.add_connection('/depth_sr/points', 'sensor_msgs/msg/PointCloud2',
                                       typestore=STORE)
        with Reader(tmp_path / 'in') as reader:
            for connection, timestamp, raw in reader.messages():
                writer.write(connections[TOPICS.index(connection.topic)], timestamp, raw)
        from sensor_msgs.msg import PointCloud2
        writer.write(points, 2_000_000_000, serialize_message(PointCloud2()))
    assert main(['--input', str(tmp_path / 'live'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress',
                 '--copy-inputs']) == 0
    assert 'not copied' not in capsys.readouterr().out
    assert len(read_bag(tmp_path / 'out')['/depth_sr/points']) == 1


def test_the_output_metadata_is_one_humble_reads(tmp_path, model_path):
    # rosbag2 metadata version 9 (Jazzy's) gives each topic's QoS profiles as a YAML list;
    # Humble's ros2 bag reads that field as a string and fails. Version 8 is read by both.
    import yaml
    write_bag(tmp_path / 'in', fixture_frames(2))
    assert main(['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
                 '--model', model_path, '--device', 'cpu', '--no-progress']) == 0
    info = yaml.safe_load((tmp_path / 'out' / 'metadata.yaml').read_text())
    info = info['rosbag2_bagfile_information']
    assert info['version'] == 8 and info['storage_identifier'] == 'mcap'
    assert all(isinstance(t['topic_metadata']['offered_qos_profiles'], str)
               for t in info['topics_with_message_count'])
