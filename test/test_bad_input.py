"""
Bad input, overload and faults sent to a running node over real rclpy/DDS.

Each case checks what the log says and that the node then serves the next good pair. The
conversions and the pipeline are tested without DDS in test_conversions.py and
test_pipeline.py; here the whole node is under test.
"""

import threading
import time

from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.onnx_export import export_onnx
from depth_sr_ros.onnx_predictor import OnnxPredictor
from depth_sr_ros.preprocessing import PREPROCESSING
from depth_sr_ros.ros.conversions import image_to_array, stamp_ns
from helpers import untrained
from model_files import bad_model_file
from node_graph import float32_predictor, make_pair, send, TINY
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
import torch

SECOND = 1_000_000_000
PERIOD = 33_000_000  # ns between two frames (30 Hz)


def publish(pubs, depth_msg, color_msg, depth_info, color_info):
    """Publish one pair; an info given as None is not sent."""
    for name, msg in (('depth_info', depth_info), ('color_info', color_info),
                      ('color', color_msg), ('depth', depth_msg)):
        if msg is not None:
            pubs[name].publish(msg)


def handled(node):
    """Return how many pairs the inference thread has finished with, in any way."""
    counts = node.counts
    return counts['published'] + counts['bad_frames'] + counts['failed_frames']


def send_until_handled(g, pubs, make, first_stamp, tries=30):
    """Send pairs made by ``make(stamp)`` until the node has handled one (DDS may lose some)."""
    before = handled(g.node)
    for i in range(tries):
        publish(pubs, *make(first_stamp + i * PERIOD))
        end = time.monotonic() + 0.3
        while time.monotonic() < end and handled(g.node) == before:
            time.sleep(0.01)
        if handled(g.node) > before:
            return
    raise AssertionError(f'the node handled none of {tries} pairs; counts {g.node.counts}')


def good_pair_is_served(g, pubs, first_stamp, tries=30):
    """
    Send good pairs until one comes back; return (output Image, depth sent, colour sent).

    Any pair sent here counts: on a loaded machine the output of one try may arrive during a
    later one.
    """
    sent = {}  # stamp -> (depth, colour) as sent

    def served():
        for out in g.received['image']:
            if stamp_ns(out.header.stamp) in sent:
                return (out, *sent[stamp_ns(out.header.stamp)])
        return None
    for i in range(tries):
        stamp = first_stamp + i * PERIOD
        _, depth, color = send(pubs, stamp)
        sent[stamp] = depth, color
        end = time.monotonic() + (0.5 if i < tries - 1 else 5.0)  # the last: wait longer
        while time.monotonic() < end:
            result = served()
            if result:
                return result
            time.sleep(0.01)
    raise AssertionError(f'no good pair was served after the bad input; counts {g.node.counts}')


def restart_the_bag(g, pubs):
    """
    Play on, end with depth only (15 messages queued unpaired), then restart at 5 s.

    Return the first output after the restart.
    """
    good_pair_is_served(g, pubs, 500 * SECOND)
    for i in range(15):
        pubs['depth'].publish(make_pair(501 * SECOND + i * PERIOD)[0])
        time.sleep(0.02)
    out, _, _ = good_pair_is_served(g, pubs, 5 * SECOND)
    return out


# Each case turns a good pair (depth 16UC1 40x30 registered to rgb8 160x120, both infos) into
# the bad input: case id -> (change(depth, colour, depth_info, colour_info) -> the four
# messages to send, what the log must say ('' = nothing), whether the bad pair is published).
def _set(msg, **fields):
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _padded(d, c, di, ci):
    rows = np.frombuffer(bytes(d.data), np.uint8).reshape(d.height, d.step)
    padded = np.zeros((d.height, d.step + 8), np.uint8)
    padded[:, :d.step] = rows
    return _set(d, step=d.step + 8, data=padded.tobytes()), c, di, ci


def _big_endian(d, c, di, ci):
    values = np.frombuffer(bytes(d.data), '<u2').astype('>u2')
    return _set(d, is_bigendian=1, data=values.tobytes()), c, di, ci


def _float_depth(d, values):
    metres = np.where(image_to_array(d) > 0, image_to_array(d) * 0.001, np.nan)
    metres = metres.astype(np.float32)
    values(metres)
    return _set(d, encoding='32FC1', step=d.width * 4, data=metres.astype('<f4').tobytes())


def _nan_inf_negative(m):
    m[0, :4] = np.inf
    m[0, 4:8] = -np.inf
    m[1, :8] = -1.0


def _alpha(d, c, di, ci):
    rgb = image_to_array(c)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return d, _set(c, encoding='rgba8', step=c.width * 4, data=rgba.tobytes()), di, ci


def _other_frame(d, c, di, ci):
    d.header.frame_id = 'depth_optical'
    return d, c, di, ci


def _good(stamp):
    depth_msg, color_msg, _, _, infos = make_pair(stamp)
    return (depth_msg, color_msg) + infos


def _other_size_colour(d, c, di, ci):
    smaller = np.zeros((100, 150, 3), np.uint8).tobytes()
    return d, _set(c, width=150, height=100, step=450, data=smaller), di, ci


BAD_INPUT = {
    'unsupported depth encoding': (
        lambda d, c, di, ci: (_set(d, encoding='yuv422'), c, di, ci),
        "frame skipped: unsupported encoding 'yuv422'", False),
    'unsupported colour encoding': (
        lambda d, c, di, ci: (d, _set(c, encoding='bayer_rggb8'), di, ci),
        "frame skipped: unsupported encoding 'bayer_rggb8'", False),
    'row padding': (_padded, '', True),
    'big-endian depth': (_big_endian, '', True),
    'data shorter than height x step': (
        lambda d, c, di, ci: (_set(d, data=bytes(d.data)[:-10]), c, di, ci),
        'frame skipped: data length 2390 does not match height x step (30 x 80 = 2400)', False),
    'zero width': (
        lambda d, c, di, ci: (_set(d, width=0, step=0, data=b''), c, di, ci),
        'frame skipped: empty image 0x30', False),
    'sizes that fit no scale': (
        _other_size_colour,
        'frame skipped: colour camera_info is for 160x120 but the image is 150x100: the output '
        'needs the colour camera geometry, and depth_sr/image is never published without it',
        False),
    'depth all invalid': (
        lambda d, c, di, ci: (_set(d, data=bytes(len(d.data))), c, di, ci),
        'depth has no valid pixel in [min_depth, max_depth] = [0.1, 10.0] m; publishing an '
        'all-invalid image', True),
    '32FC1 with NaN, inf and negative values': (
        lambda d, c, di, ci: (_float_depth(d, _nan_inf_negative), c, di, ci),
        '32FC1 depth has negative values; they are treated as invalid', True),
    'depth beyond the valid range (millimetres sent as 32FC1 metres)': (
        lambda d, c, di, ci: (_float_depth(d, lambda m: m.__imul__(1000.0)), c, di, ci),
        'depth has no valid pixel in [min_depth, max_depth] = [0.1, 10.0] m', True),
    'colour with alpha': (_alpha, '', True),
    'camera_info with zero K': (
        lambda d, c, di, ci: (d, c, di, _set(ci, k=[0.0] * 9)),
        "colour camera_info K has non-positive focal length (0.0, 0.0); using the depth's "
        'camera_info scaled 4x', True),
    'camera_info with garbage K': (
        lambda d, c, di, ci: (d, c, di, _set(ci, k=[float('nan')] * 9)),
        "colour camera_info K is not 9 finite numbers; using the depth's camera_info scaled "
        '4x', True),
    'frame ids differ': (
        _other_frame,
        "frame skipped: no transform from depth frame 'depth_optical' to colour frame "
        "'colour_optical': tf2_ros is not installed here, so set the depth_to_color parameter "
        "([x, y, z, qx, qy, qz, qw] from 'depth_optical' to 'colour_optical'): the camera "
        "driver's /tf_static has it; or give the node the depth the driver registers to the "
        'colour camera (RealSense: aligned_depth_to_color, align_depth.enable:=true)', False),
}


@pytest.mark.parametrize('case', list(BAD_INPUT))
def test_bad_input_is_named_and_the_next_good_pair_served(graph, capfd, case, monkeypatch):
    # The messages are the pip route's (no cv_bridge, no tf2_ros), also on a ROS install,
    # where cv_bridge converts bayer and yuv images and tf2 answers for the frames.
    from depth_sr_ros.ros import conversions, extrinsics
    monkeypatch.setattr(conversions, 'cv_bridge', None)
    monkeypatch.setattr(extrinsics, 'tf2_ros', None)
    change, message, published = BAD_INPUT[case]
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)

    send_until_handled(g, pubs, lambda stamp: change(*_good(stamp)), 10 * SECOND)
    counts = dict(g.node.counts)
    assert counts['published' if published else 'bad_frames'] == 1, counts
    assert counts['failed_frames'] == 0
    out, depth, color = good_pair_is_served(g, pubs, 20 * SECOND)
    err = capfd.readouterr().err
    if message:
        assert message in err
    else:  # handled input: served as the good pair would be, nothing to warn about
        assert 'WARN' not in err, err
        first = g.received['image'][0]
        change_free = make_pair(stamp_ns(first.header.stamp))
        expected = float32_predictor(g.node.model_path)(
            change_free[2], change_free[3])
        got = image_to_array(first).astype(np.float64)
        valid = np.isfinite(expected)
        np.testing.assert_allclose(got[valid], np.rint(expected[valid] * 1000), atol=1)
    assert (out.width, out.height) == (160, 120)


def test_stamps_jumping_back_like_a_restarted_bag_do_not_stall_pairing(graph):
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    out = restart_the_bag(g, pubs)
    assert stamp_ns(out.header.stamp) < 10 * SECOND


def test_one_input_stopping_is_explained_and_pairing_resumes(graph, capfd):
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 30 * SECOND)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 4.5:  # colour stops, depth goes on
        depth_msg = make_pair(31 * SECOND + i * PERIOD)[0]
        pubs['depth'].publish(depth_msg)
        i += 1
        time.sleep(0.05)
    good_pair_is_served(g, pubs, 40 * SECOND)
    err = capfd.readouterr().err
    assert 'depth arrives but no colour message for over 3 s' in err


def test_a_burst_of_200_pairs_a_second_is_counted_and_leaves_no_backlog(graph):
    g = graph(Parameter('diagnostics_period', value=0.5))
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 60 * SECOND)
    start = time.monotonic()
    for i in range(200):  # 200 pairs (400 images) in about a second
        send(pubs, 61 * SECOND + i * 5_000_000)
        time.sleep(max(0.0, start + (i + 1) * 0.005 - time.monotonic()))
    burst_seconds = time.monotonic() - start
    sent = time.monotonic()
    out, _, _ = good_pair_is_served(g, pubs, 70 * SECOND)
    assert time.monotonic() - sent < 2.0, 'the pair after the burst waited behind a backlog'
    time.sleep(0.3)
    counts = dict(g.node.counts)
    # Every pair handed to the inference thread is published, refused or replaced (counted).
    assert counts['pairs'] == handled(g.node) + g.node.slot.replaced, counts
    assert counts['bad_frames'] == counts['failed_frames'] == 0
    assert counts['pairs'] > 50, f'only {counts["pairs"]} pairs in {burst_seconds:.1f} s'


def test_out_of_gpu_memory_on_a_frame_drops_it_and_goes_on(graph, capfd):
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    upsampler = g.node.processor.upsampler
    run = type(upsampler).__call__
    calls = []

    def once_out_of_memory(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return run(self, *args, **kwargs)
    upsampler.__class__ = type('OutOfMemoryOnce', (type(upsampler),),
                               {'__call__': once_out_of_memory})
    send_until_handled(g, pubs, _good, 80 * SECOND)
    assert g.node.counts['failed_frames'] == 1
    good_pair_is_served(g, pubs, 90 * SECOND)
    err = capfd.readouterr().err
    assert ('frame dropped: out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB)'
            in err)


def test_a_model_switch_to_a_bad_file_keeps_the_old_model(graph, tmp_path):
    g = graph()
    node = g.node
    old_path, old_processor = node.model_path, node.processor
    for kind, problem in (('missing', 'not found'), ('corrupt', 'not a readable checkpoint'),
                          ('other_arch', 'weights do not match ahmf'),
                          ('other_scale', 'weights do not match pag_net'),
                          # used to escape the callback as AttributeError and end the executor
                          ('preprocessing_text', 'preprocessing is a str, not a dict')):
        path = bad_model_file(tmp_path, kind)
        result = node.set_parameters([Parameter('model_path', value=str(path))])[0]
        assert not result.successful
        assert f"model file '{path}': {problem}" in result.reason
        assert f'still serving {old_path}' in result.reason
        assert node.processor is old_processor and node.model_path == old_path
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 100 * SECOND)
    # A good file replaces the model; the next pairs use the new one.
    new_path = tmp_path / 'other.pt'
    save_checkpoint(new_path, untrained('pag_net', seed=1, **TINY), 'pag_net', TINY,
                    PREPROCESSING, {'data': 'untrained, other seed'})
    assert node.set_parameters([Parameter('model_path', value=str(new_path))])[0].successful
    end = time.monotonic() + 30  # it serves once warmed up, on its own thread
    while node.model_path != str(new_path) and time.monotonic() < end:
        time.sleep(0.02)
    assert node.model_path == str(new_path)
    out, depth, color = good_pair_is_served(g, pubs, 110 * SECOND)
    expected = float32_predictor(str(new_path))(depth, color)
    valid = np.isfinite(expected)
    np.testing.assert_allclose(image_to_array(out)[valid], np.rint(expected[valid] * 1000),
                               atol=1)


def _other_model(tmp_path):
    path = tmp_path / 'other.pt'
    save_checkpoint(path, untrained('pag_net', seed=1, **TINY), 'pag_net', TINY, PREPROCESSING,
                    {'data': 'untrained, other seed'})
    return str(path)


def test_a_model_switch_over_the_parameter_service_does_not_hold_the_executor(
        graph, tmp_path, monkeypatch):
    # A warm-up held until the test lets it go (a big model on a CPU, or torch.compile, takes
    # seconds): meanwhile the parameter service answers and the node goes on taking pairs and
    # serving them with the old model. Warmed up inside the parameter callback, on the
    # executor's thread, no image was taken, and what the subscriptions' queues could not hold
    # was lost without a count.
    from rclpy.parameter_client import AsyncParameterClient
    g = graph()
    node = g.node
    old_path = node.model_path
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 120 * SECOND)
    warm_up = type(node.processor.upsampler).warm_up
    release = threading.Event()
    shapes = []

    def held_warm_up(self, *args):
        shapes.append(args)
        release.wait(60)
        return warm_up(self, *args)
    monkeypatch.setattr(type(node.processor.upsampler), 'warm_up', held_warm_up)
    client = AsyncParameterClient(g.probe, 'depth_sr')
    assert client.wait_for_services(timeout_sec=10.0)
    new_path = _other_model(tmp_path)
    try:
        future = client.set_parameters([Parameter('model_path', value=new_path)])
        end = time.monotonic() + 30
        while not future.done() and time.monotonic() < end:
            time.sleep(0.05)
        assert future.done() and future.result().results[0].successful
        served = len(g.received['image'])
        stamp = 130 * SECOND
        end = time.monotonic() + 60
        while len(g.received['image']) < served + 5 and time.monotonic() < end:
            send(pubs, stamp)
            stamp += PERIOD
            time.sleep(0.1)
        assert len(g.received['image']) >= served + 5  # served by the old model
        assert node.model_path == old_path  # the new one still warming up
    finally:
        release.set()
    end = time.monotonic() + 30
    while node.model_path != new_path and time.monotonic() < end:
        time.sleep(0.02)
    assert node.model_path == new_path
    assert shapes == [((30, 40),)]  # at the camera's LR size (a compile is made for one size)


def test_a_model_that_fails_its_warm_up_on_a_switch_is_dropped_and_the_parameter_set_back(
        graph, tmp_path, monkeypatch, capfd):
    g = graph()
    node = g.node
    old_path, old_processor = node.model_path, node.processor

    def failing_warm_up(self, *args):
        raise RuntimeError('no kernel image is available for execution on the device')
    monkeypatch.setattr(type(node.processor.upsampler), 'warm_up', failing_warm_up)
    new_path = _other_model(tmp_path)
    assert node.set_parameters([Parameter('model_path', value=new_path)])[0].successful
    end = time.monotonic() + 30
    while node.get_parameter('model_path').value != old_path and time.monotonic() < end:
        time.sleep(0.02)
    assert node.get_parameter('model_path').value == old_path
    assert node.processor is old_processor and node.model_path == old_path
    err = capfd.readouterr().err
    assert (f"model switch failed: model file '{new_path}': the warm-up forward pass failed: "
            'RuntimeError: no kernel image') in err and f'still serving {old_path}' in err
    monkeypatch.undo()
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 140 * SECOND)


def test_an_onnx_switch_builds_its_session_off_the_executor(
        graph, model_path, tmp_path, monkeypatch):
    # onnxruntime builds a session in seconds on a GPU (CUDA's context, TensorRT): built in the
    # parameter callback, it held the executor as a warm-up did. A damaged file is still
    # refused in the callback, from its metadata.
    g = graph(Parameter('precision', value='auto'))  # the default: an ONNX file's only one
    node = g.node
    old_path = node.model_path
    damaged = tmp_path / 'damaged.onnx'
    damaged.write_bytes(b'not an onnx model')
    result = node.set_parameters([Parameter('model_path', value=str(damaged))])[0]
    assert not result.successful and 'not a readable ONNX model' in result.reason
    onnx_path = str(tmp_path / 'tiny.onnx')
    export_onnx(model_path, onnx_path)
    release, held_out = threading.Event(), []
    build = OnnxPredictor.__init__

    def held_build(self, *args, **kwargs):
        held_out.append(not release.wait(20))  # True: nobody let it go
        build(self, *args, **kwargs)
    monkeypatch.setattr(OnnxPredictor, '__init__', held_build)
    try:
        assert node.set_parameters([Parameter('model_path', value=onnx_path)])[0].successful
        assert held_out == []  # the callback returned while the session was being built
        assert node.model_path == old_path
    finally:
        release.set()
    end = time.monotonic() + 30
    while node.model_path != onnx_path and time.monotonic() < end:
        time.sleep(0.02)
    assert node.model_path == onnx_path and held_out == [False]
    assert isinstance(node.processor.upsampler, OnnxPredictor)


def test_a_switch_replaced_while_its_session_builds_is_neither_warmed_nor_served(
        graph, model_path, tmp_path, monkeypatch):
    # Switches in quick succession: the replaced one's warm-up (a CUDA or TensorRT session
    # beside the next one's on a GPU) is skipped once its session is built.
    g = graph(Parameter('precision', value='auto'))
    node = g.node
    onnx_path = str(tmp_path / 'tiny.onnx')
    export_onnx(model_path, onnx_path)
    release, building, warmed = threading.Event(), threading.Event(), []
    build, warm_up = OnnxPredictor.__init__, OnnxPredictor.warm_up

    def held_build(self, *args, **kwargs):
        building.set()
        release.wait(30)
        build(self, *args, **kwargs)

    def counted_warm_up(self, *args):
        warmed.append(args)
        return warm_up(self, *args)
    monkeypatch.setattr(OnnxPredictor, '__init__', held_build)
    monkeypatch.setattr(OnnxPredictor, 'warm_up', counted_warm_up)
    assert node.set_parameters([Parameter('model_path', value=onnx_path)])[0].successful
    assert building.wait(30)
    other = _other_model(tmp_path)
    assert node.set_parameters([Parameter('model_path', value=other)])[0].successful
    end = time.monotonic() + 30
    while node.model_path != other and time.monotonic() < end:
        time.sleep(0.02)
    assert node.model_path == other
    release.set()
    for thread in node._switchers:
        thread.join(30)
    assert warmed == [] and node.model_path == other


class MessageFiltersStandIn:
    """
    What the node uses of message_filters (not on PyPI), with the Python package's rules.

    SimpleFilter calls its registered callbacks in order, and Subscriber is one fed by a
    subscription; the synchronizers keep one dict per input (stamp ns -> message) under
    ``lock`` and, when a queue is over ``queue_size``, delete its oldest stamp, as
    message_filters does. So after a time jump with a full queue every new (older) message is
    the one deleted.
    """

    class SimpleFilter:

        def __init__(self):
            self.callbacks = []

        def registerCallback(self, callback, *args):  # noqa: N802 (message_filters' name)
            self.callbacks.append((callback, args))

        def signalMessage(self, *msg):  # noqa: N802
            for callback, args in self.callbacks:
                callback(*msg, *args)

    class Subscriber(SimpleFilter):

        def __init__(self, node, msg_type, topic, **kwargs):
            super().__init__()
            node.create_subscription(msg_type, topic, self.signalMessage, **kwargs)

    class ApproximateTimeSynchronizer:

        def __init__(self, inputs, queue_size, slop):
            self.queue_size, self.slop_ns = queue_size, slop * 1e9
            self.queues = [{} for _ in inputs]
            self.lock = threading.Lock()
            self.callbacks = []
            for sub, queue in zip(inputs, self.queues):
                sub.registerCallback(self.add, queue)

        def registerCallback(self, callback):  # noqa: N802
            self.callbacks.append(callback)

        def add(self, msg, queue):
            with self.lock:
                queue[stamp_ns(msg.header.stamp)] = msg
                while len(queue) > self.queue_size:
                    del queue[min(queue)]
                depth, color = self.queues
                match = [(d, c) for d in depth for c in color if abs(d - c) < self.slop_ns]
                if not match:
                    return
                d, c = min(match, key=lambda dc: abs(dc[0] - dc[1]))
                pair = depth.pop(d), color.pop(c)
            for callback in self.callbacks:
                callback(*pair)

    TimeSynchronizer = None  # exact_sync is not used here


def test_message_filters_pairs_and_recovers_from_a_time_jump(graph, monkeypatch, capfd):
    from depth_sr_ros.ros import node as node_module
    monkeypatch.setattr(node_module, 'message_filters', MessageFiltersStandIn)
    g = graph()
    assert g.node.pairing_backend == 'message_filters'
    pubs = g.connect(qos_profile_sensor_data)
    out = restart_the_bag(g, pubs)
    assert stamp_ns(out.header.stamp) < 10 * SECOND
    assert g.node.counts['cleared_after_jump'] >= 10
    assert 'stamps jumped back by' in capfd.readouterr().err  # depth or colour, either first


def test_a_failing_publish_is_counted_and_the_next_pair_served(graph, capfd):
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    publish_depth = g.node.pub_depth.publish
    calls = []

    def fail_once(msg):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('publisher is gone')
        publish_depth(msg)
    g.node.pub_depth.publish = fail_once
    send_until_handled(g, pubs, _good, 120 * SECOND)
    assert g.node.counts['failed_frames'] == 1
    good_pair_is_served(g, pubs, 130 * SECOND)
    assert 'publishing failed: RuntimeError: publisher is gone' in capfd.readouterr().err


def test_message_filters_evictions_are_counted_as_dropped(graph, monkeypatch):
    # message_filters deletes the oldest message of a full queue without counting it; the
    # node's ledger applies the same rule to what it gives the synchronizer, so they show.
    from depth_sr_ros.ros import node as node_module
    monkeypatch.setattr(node_module, 'message_filters', MessageFiltersStandIn)
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    good_pair_is_served(g, pubs, 500 * SECOND)
    dropped, received = g.node.dropped_pairs(), g.node.counts['received']
    queued_depth = len(g.node._sync.queues[0])
    for i in range(25):  # depth without colour: the queue (10) overflows
        pubs['depth'].publish(make_pair(510 * SECOND + i * PERIOD)[0])
        time.sleep(0.02)
    end = time.monotonic() + 5.0
    while time.monotonic() < end and g.node.counts['received'] < received + 25:
        time.sleep(0.05)
    time.sleep(0.2)  # a message still on its way would be counted later
    arrived = g.node.counts['received'] - received
    assert queued_depth + arrived > 10, arrived  # best effort may lose some, not most
    assert g.node.dropped_pairs() - dropped == queued_depth + arrived - 10
    assert len(g.node._sync.queues[0]) == 10
