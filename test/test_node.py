"""The node over real rclpy and DDS (helpers in node_graph.py, fixtures in conftest.py)."""

import os
import signal
import time

from depth_sr_ros.inference import Acceleration, PRECISION_CHOICES
from depth_sr_ros.onnx_export import export_onnx
from depth_sr_ros.onnx_predictor import OnnxPredictor
from depth_sr_ros.ros import ONE_COMPUTER_TRANSPORTS
from depth_sr_ros.ros.conversions import image_to_array
from depth_sr_ros.ros.node import DepthSrNode
from model_files import bad_model_file
from node_graph import DOMAIN_ID, float32_predictor, make_pair, send, wait_for_subscribers
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
import torch


@pytest.mark.parametrize('qos', [qos_profile_sensor_data,
                                 QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)],
                         ids=['best_effort', 'reliable'])
def test_a_pair_gives_the_predictors_output_in_the_colour_frame(graph, model_path, qos):
    g = graph()
    pubs = g.connect(qos)
    images = []
    for i in range(20):  # best effort may lose the very first messages during discovery
        depth_msg, depth, color = send(pubs, 1_000_000_000 + i * 33_000_000)
        images = g.wait_for('image', 1, timeout=1.0)
        if images:
            break
    assert images, 'no output received'
    out = images[0]
    stamp_ns = out.header.stamp.sec * 10**9 + out.header.stamp.nanosec
    i = (stamp_ns - 1_000_000_000) // 33_000_000
    depth_msg, color_msg, depth, color, _ = make_pair(1_000_000_000 + i * 33_000_000)
    assert (out.width, out.height, out.encoding) == (160, 120, '16UC1')
    assert out.header.stamp == depth_msg.header.stamp
    assert out.header.frame_id == 'colour_optical'
    info = g.wait_for('info', 1)[0]
    assert (info.width, info.height) == (160, 120)
    np.testing.assert_allclose(info.k, [200, 0, 79.5, 0, 200, 59.5, 0, 0, 1])
    mm = image_to_array(out).astype(np.float64)
    expected = float32_predictor(model_path)(depth, color)
    hole = np.isnan(expected)
    assert hole[20:32, 40:56].all() and (mm[hole] == 0).all()
    np.testing.assert_allclose(mm[~hole], np.rint(expected[~hole] * 1000), atol=1)


def test_compressed_transports_are_decoded_into_the_same_output(graph, model_path):
    # image_transport's compressed colour (png here, lossless) and compressedDepth on
    # <topic>/compressed and <topic>/compressedDepth: the output is the raw pair's.
    import cv2
    from depth_sr_ros.ros.conversions import COMPRESSED_DEPTH_HEADER
    from sensor_msgs.msg import CompressedImage
    g = graph(Parameter('depth_transport', value='compressedDepth'),
              Parameter('color_transport', value='compressed'))
    qos = qos_profile_sensor_data
    pubs = {'depth': g.probe.create_publisher(
                CompressedImage, 'depth/image_raw/compressedDepth', qos),
            'color': g.probe.create_publisher(CompressedImage, 'color/image_raw/compressed', qos),
            'depth_info': g.probe.create_publisher(CameraInfo, 'depth/camera_info', qos),
            'color_info': g.probe.create_publisher(CameraInfo, 'color/camera_info', qos)}
    end = time.monotonic() + 10
    while time.monotonic() < end and any(p.get_subscription_count() == 0 for p in pubs.values()):
        time.sleep(0.05)
    sent = {}
    for i in range(20):
        stamp = 3_000_000_000 + i * 33_000_000
        depth_msg, color_msg, depth, color, (depth_info, color_info) = make_pair(stamp)
        sent[stamp] = depth, color
        png = cv2.imencode('.png', image_to_array(depth_msg))[1].tobytes()
        pubs['depth_info'].publish(depth_info)
        pubs['color_info'].publish(color_info)
        pubs['color'].publish(CompressedImage(header=color_msg.header,
                                              format='rgb8; png compressed bgr8',
                                              data=cv2.imencode('.png', color[..., ::-1])[1]
                                              .tobytes()))
        pubs['depth'].publish(CompressedImage(
            header=depth_msg.header, format='16UC1; compressedDepth png',
            data=COMPRESSED_DEPTH_HEADER.pack(0, 0.0, 0.0) + png))
        if g.wait_for('image', 1, timeout=1.0):
            break
    out = g.received['image'][0]
    depth, color = sent[out.header.stamp.sec * 10**9 + out.header.stamp.nanosec]
    expected = float32_predictor(model_path)(depth, color)
    valid = np.isfinite(expected)
    np.testing.assert_allclose(image_to_array(out).astype(np.float64)[valid],
                               np.rint(expected[valid] * 1000), atol=1)


def test_unpaired_stamps_give_no_output_and_a_warning(graph, capfd):
    g = graph(Parameter('slop', value=0.02))
    pubs = g.connect(qos_profile_sensor_data)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 4.5:
        send(pubs, 2_000_000_000 + i * 100_000_000, depth_offset_ns=350_000_000)
        i += 1
        time.sleep(0.1)
    assert g.received['image'] == []
    err = capfd.readouterr().err
    assert 'no depth/colour pair' in err and 'stamps differ by 0.350 s' in err


def test_parameter_changes_are_validated(graph):
    g = graph()
    node = g.node
    results = node.set_parameters([Parameter('output_encoding', value='mono8')])
    assert not results[0].successful and 'output_encoding' in results[0].reason
    result = node.set_parameters_atomically([Parameter('max_depth', value=0.5),
                                             Parameter('min_depth', value=1.0)])
    assert not result.successful and 'max_depth must be greater' in result.reason
    assert node.settings.max_depth == 10.0
    assert not node.set_parameters([Parameter('slop', value=0.2)])[0].successful  # read only
    assert node.set_parameters([Parameter('output_encoding', value='32FC1')])[0].successful
    pubs = g.connect(qos_profile_sensor_data)
    for i in range(20):
        send(pubs, 3_000_000_000 + i * 33_000_000)
        if g.wait_for('image', 1, timeout=1.0):
            break
    assert g.received['image'][0].encoding == '32FC1'


def test_a_bad_frame_is_reported_and_the_next_good_pair_served(graph, capfd):
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    for i in range(20):
        depth_msg, color_msg, _, _, (depth_info, color_info) = make_pair(
            4_000_000_000 + i * 33_000_000)
        depth_msg.encoding = 'yuv422'
        pubs['depth_info'].publish(depth_info)
        pubs['color_info'].publish(color_info)
        pubs['color'].publish(color_msg)
        pubs['depth'].publish(depth_msg)
        time.sleep(0.05)
        if g.node.counts['bad_frames']:
            break
    assert g.node.counts['bad_frames'] >= 1
    for i in range(20):
        send(pubs, 5_000_000_000 + i * 33_000_000)
        if g.wait_for('image', 1, timeout=1.0):
            break
    assert g.received['image'], 'no output after the bad frame'
    assert "frame skipped: unsupported encoding 'yuv422'" in capfd.readouterr().err


def test_subscription_qos_is_sensor_data_and_can_be_overridden(graph):
    g = graph(Parameter('qos_overrides./color/image_raw.subscription.reliability',
                        value='reliable'))
    qos = {}
    for topic in ('/depth/image_raw', '/color/image_raw'):
        infos = [i for i in g.node.get_subscriptions_info_by_topic(topic)
                 if i.node_name == 'depth_sr']
        qos[topic] = infos[0].qos_profile.reliability
    assert qos['/depth/image_raw'] == ReliabilityPolicy.BEST_EFFORT
    assert qos['/color/image_raw'] == ReliabilityPolicy.RELIABLE
    # Fixed once the subscription exists, given or not: a change is refused, not ignored.
    for given in ('color', 'depth'):
        name = f'qos_overrides./{given}/image_raw.subscription.reliability'
        assert g.node.describe_parameter(name).read_only
        assert not g.node.set_parameters([Parameter(name, value='best_effort')])[0].successful


def test_a_camera_info_published_once_latched_is_received_with_a_durability_override(graph):
    # Some drivers publish camera_info once, transient local: a volatile subscription that
    # joins later never gets it. The override is accepted for the two camera_info inputs.
    from rclpy.qos import DurabilityPolicy
    g = graph(Parameter('qos_overrides./color/camera_info.subscription.durability',
                        value='transient_local'))
    info, = [i for i in g.node.get_subscriptions_info_by_topic('/color/camera_info')
             if i.node_name == 'depth_sr']
    assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = g.probe.create_publisher(CameraInfo, 'color/camera_info', latched)
    publisher.publish(make_pair(1)[4][1])  # once, at once: before the node has matched it
    end = time.monotonic() + 20
    while g.node.infos[1].newest is None and time.monotonic() < end:
        time.sleep(0.05)
    assert g.node.infos[1].newest is not None
    # Only there: rclpy wrote the override into the shared sensor-data profile it was given,
    # so the images' subscriptions turned transient local and matched no camera.
    for topic in ('/depth/camera_info', '/depth/image_raw', '/color/image_raw'):
        info, = [i for i in g.node.get_subscriptions_info_by_topic(topic)
                 if i.node_name == 'depth_sr']
        assert info.qos_profile.durability == DurabilityPolicy.VOLATILE, topic
    assert qos_profile_sensor_data.durability == DurabilityPolicy.VOLATILE


def test_the_latched_camera_info_hint_asks_for_what_the_subscription_lacks():
    # A best-effort, transient-local subscription gets no latched message from another
    # process (Fast DDS): the hint asked for the durability only, then fell silent.
    from types import SimpleNamespace
    from rclpy.qos import DurabilityPolicy
    latched = SimpleNamespace(qos_profile=QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    volatile = SimpleNamespace(qos_profile=QoSProfile(depth=1))

    def hint(publishers, durability, reliability, received=None):
        sub = SimpleNamespace(topic_name='/color/camera_info', qos_profile=QoSProfile(
            depth=1, durability=durability, reliability=reliability))
        node = SimpleNamespace(_info_inputs={id(sub): 1},
                               infos=(None, SimpleNamespace(newest=received)),
                               get_publishers_info_by_topic=lambda topic: publishers)
        return DepthSrNode._latched_hint(node, sub)
    setting = 'qos_overrides./color/camera_info.subscription'
    both = hint([latched], DurabilityPolicy.VOLATILE, ReliabilityPolicy.BEST_EFFORT)
    assert both.endswith(f'set {setting}.durability: transient_local and '
                         f'{setting}.reliability: reliable'), both
    half = hint([latched], DurabilityPolicy.TRANSIENT_LOCAL, ReliabilityPolicy.BEST_EFFORT)
    assert half.endswith(f'set {setting}.reliability: reliable'), half
    assert hint([latched], DurabilityPolicy.TRANSIENT_LOCAL, ReliabilityPolicy.RELIABLE) == ''
    assert hint([latched, volatile], DurabilityPolicy.VOLATILE,
                ReliabilityPolicy.BEST_EFFORT) == ''  # a publisher that repeats it
    assert hint([latched], DurabilityPolicy.VOLATILE, ReliabilityPolicy.BEST_EFFORT,
                received=object()) == ''


def _process_env(**extra):
    """Return the environment of a node subprocess: the tests' domain, faulthandler on."""
    # faulthandler: a crash prints every thread's Python stack to the stderr the tests show
    return dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONFAULTHANDLER='1', **extra)


def _node_process(*ros_args):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, '-m', 'depth_sr_ros.ros.node', '--ros-args',
                             *ros_args], env=_process_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize('kind, problem', [
    ('missing', 'not found'), ('corrupt', 'not a readable checkpoint'),
    ('other_arch', 'weights do not match ahmf'), ('other_scale', 'weights do not match pag_net'),
    ('state_list', 'state_dict is a list, not a dict')])
def test_a_bad_model_file_stops_start_up_with_one_line(tmp_path, kind, problem):
    path = bad_model_file(tmp_path, kind)
    process = _node_process('-p', f'model_path:={path}')
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert '\n' not in err.strip()
    assert err.startswith(f"depth_sr_node: model file '{path}': {problem}")


@pytest.mark.parametrize('setting, problem', [
    ('slop:=-1.0', 'Parameter slop out of range'), ('slop:=0.0', 'Parameter slop out of range'),
    ('queue_size:=0', 'Parameter queue_size out of range'),
    ('precision:=half', f'precision must be one of {PRECISION_CHOICES}'),
    ('depth_to_color:=[0.0, 1.0]', 'a transform needs 7 finite numbers'),
    ('output_size:=[640]', 'output_size must have 2 values'),
    ('output_size:=[640,-1]', 'output_size must be within'),
    ('output_size:=[640,0]', 'output_size must be [0, 0] (the colour size) or two sizes')])
def test_a_bad_parameter_stops_start_up_with_one_line(model_path, setting, problem):
    process = _node_process('-p', f'model_path:={model_path}', '-p', setting)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert '\n' not in err.strip() and err.startswith('depth_sr_node: ')
    assert problem in err


def _start_then_ctrl_c(*ros_args, signal_number=signal.SIGINT):
    """Start the node, wait until it pairs, press Ctrl-C: return (exit status, all stderr)."""
    process = _node_process(*ros_args)
    try:
        end = time.monotonic() + 60
        lines = []
        while time.monotonic() < end:
            line = process.stderr.readline()
            lines.append(line)
            if 'pairing with' in line or not line:
                break
        assert any('pairing with' in line for line in lines), ''.join(lines)
        process.send_signal(signal_number)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, ''.join(lines) + err


def test_ctrl_c_exits_cleanly(model_path):
    status, err = _start_then_ctrl_c('-p', f'model_path:={model_path}')
    assert status == 0, err  # the node's own stderr, to tell a crash from a hang
    assert 'Traceback' not in err


def test_a_bad_ros_argument_is_one_line():
    process = _node_process('--no-such-ros-argument')
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert "UnknownROSArgsError: ['--no-such-ros-argument']" in err
    assert 'Traceback' not in err


def test_sigterm_exits_cleanly_too(model_path):
    status, err = _start_then_ctrl_c('-p', f'model_path:={model_path}',
                                     signal_number=signal.SIGTERM)
    assert status == 0, err
    assert 'Traceback' not in err


def test_signals_stop_the_node_in_the_spinning_thread_alone(monkeypatch):
    """
    run_node installs no rclpy signal handlers, whose own thread would shut ROS down beside it.

    A timer plays the Ctrl-C (it calls the SIGINT handler in the spinning thread, as Python
    does) after noting how signals are handled while the node spins.
    """
    from depth_sr_ros.ros.entry import run_node
    from rclpy.node import Node
    from rclpy.signals import (get_current_signal_handlers_options, SignalHandlerOptions,
                               uninstall_signal_handlers)
    monkeypatch.setenv('ROS_DOMAIN_ID', str(DOMAIN_ID))
    uninstall_signal_handlers()  # an earlier rclpy.init in this process may have left them
    seen = {}

    class Interrupted(Node):

        def __init__(self):
            super().__init__('interrupted')
            self.create_timer(0.01, self.interrupt)

        def interrupt(self):
            seen['rclpy handlers'] = get_current_signal_handlers_options()
            seen['spinning'] = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
            try:  # while spinning the handler only notes it: an interrupt raised at any
                # point could land in a destructor and be printed as an ignored exception
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            except KeyboardInterrupt:
                seen['raised'] = True

        def stop(self):
            seen['stopping'] = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert run_node(Interrupted, 'interrupted', (), ['interrupted']) == 0
    assert 'raised' not in seen
    assert seen['rclpy handlers'] == SignalHandlerOptions.NO
    on_sigint, on_sigterm = seen['spinning']
    assert on_sigterm is on_sigint and callable(on_sigint)  # SIGTERM stops it as Ctrl-C does
    assert seen['stopping'] == (signal.SIG_IGN, signal.SIG_IGN)  # a second Ctrl-C waits
    assert not rclpy.ok()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (sigint, sigterm)


def test_a_stop_signal_that_python_turns_into_another_error_is_still_a_clean_stop(
        monkeypatch, capsys):
    """
    SIGTERM during start-up can surface as another error, not KeyboardInterrupt.

    Thread.start waits on an Event; an interrupted wait leaves its lock released and the
    waiter's exit raises "RuntimeError: release unlocked lock" (CI saw it on Jazzy). The node
    plays that: the installed handler runs in __init__, and the error replaces the interrupt.
    A RuntimeError is one of the node's start-up errors, so without the signal it would be
    reported as "cannot start" with exit 1.
    """
    from depth_sr_ros.ros.entry import run_node
    from rclpy.node import Node
    monkeypatch.setenv('ROS_DOMAIN_ID', str(DOMAIN_ID))

    class StoppedWhileStarting(Node):

        def __init__(self):
            super().__init__('stopped_while_starting')
            try:
                signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
            except KeyboardInterrupt:
                raise RuntimeError('release unlocked lock')

    assert run_node(StoppedWhileStarting, 'stopped', (RuntimeError,), ['stopped']) == 0
    assert capsys.readouterr().err == ''

    class FailsToStart(Node):

        def __init__(self):
            super().__init__('fails_to_start')
            raise RuntimeError('no such device')

    assert run_node(FailsToStart, 'fails', (RuntimeError,), ['fails']) == 1
    assert capsys.readouterr().err == 'fails: no such device\n'

    class FailsAfterASwallowedStop(Node):  # an error of its own, not the stop's

        def __init__(self):
            super().__init__('fails_after_a_swallowed_stop')
            try:
                signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
            except KeyboardInterrupt:
                pass
            raise RuntimeError('no such device')

    assert run_node(FailsAfterASwallowedStop, 'fails', (RuntimeError,), ['fails']) == 1
    assert capsys.readouterr().err == 'fails: no such device\n'


def _ticking(name, tick):
    """Return a factory of a node named ``name`` that calls ``tick()`` every 10 ms."""
    from rclpy.node import Node

    def factory():
        node = Node(name)
        node.create_timer(0.01, tick)
        return node
    return factory


def test_a_stop_signal_that_rclpy_reports_as_another_error_while_spinning_is_a_clean_stop(
        monkeypatch):
    # The interrupt lands inside rclpy's C++ taking a message, which raises a RuntimeError of
    # its own with the interrupt gone (CI saw it on Ctrl-C of depth_sr_live_demo); the timer
    # plays that in the spinning thread.
    from depth_sr_ros.ros.entry import run_node
    monkeypatch.setenv('ROS_DOMAIN_ID', str(DOMAIN_ID))

    def tick():
        try:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass
        raise RuntimeError("Unable to convert call argument '0' to Python object")

    assert run_node(_ticking('take_fails', tick), 'take_fails', (), ['take_fails']) == 0


def test_a_stop_signal_whose_interrupt_a_library_swallows_still_stops_the_node(monkeypatch):
    from depth_sr_ros.ros.entry import run_node
    monkeypatch.setenv('ROS_DOMAIN_ID', str(DOMAIN_ID))

    def tick():
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):  # once: the handler then ignores further signals
            try:
                handler(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass  # a callback that catches everything
    swallows = _ticking('swallows', tick)

    class Hung(Exception):
        pass

    def hung(number, frame):
        raise Hung('run_node still spinning 20 s after the stop signal')

    # Without the stop check in the spin loop this would never return (further signals are
    # ignored): an alarm ends the wait with an error instead.
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert run_node(swallows, 'swallows', (), ['swallows']) == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


TIMERLESS_NODE = """
import sys
from depth_sr_ros.ros.entry import run_node
from rclpy.node import Node

class Quiet(Node):
    def __init__(self):
        super().__init__('quiet')
        print('spinning', file=sys.stderr, flush=True)

sys.exit(run_node(Quiet, 'quiet', ()))
"""


@pytest.mark.parametrize('ignored_before', [False, True], ids=['sigint', 'sigint_was_ignored'])
def test_ctrl_c_stops_a_node_that_nothing_wakes(ignored_before):
    """A node with no timers or messages still stops (its executor waits in short steps)."""
    import subprocess
    import sys
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored_before else None
    process = subprocess.Popen([sys.executable, '-c', TIMERLESS_NODE], env=_process_env(),
                               stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    try:
        assert process.stderr.readline().strip() == 'spinning'
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert 'Traceback' not in err


def test_an_unknown_parameter_is_named_and_known_ones_still_apply(model_path):
    status, err = _start_then_ctrl_c('-p', f'model_path:={model_path}', '-p', 'scale:=2',
                                     '-p', 'slop:=0.02', '-p', 'use_sim_time:=false')
    assert status == 0, err
    assert 'ignoring parameters this node does not have: scale (' in err
    assert 'slop 0.02 s' in err  # a given, known parameter keeps its value


def test_the_default_acceleration_parameters_serve_an_onnx_model(model_path, tmp_path):
    # load_predictor runs an .onnx file only with Acceleration(): the node's defaults must
    # build exactly that, or every ONNX model is refused at start-up.
    onnx_path = str(tmp_path / 'tiny.onnx')
    export_onnx(model_path, onnx_path)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        node = DepthSrNode(context=context, parameter_overrides=[
            Parameter('model_path', value=onnx_path)])
        try:
            assert node.acceleration == Acceleration()
            assert isinstance(node.processor.upsampler, OnnxPredictor)
        finally:
            node.stop()
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only decision')
def test_cuda_without_cuda_falls_back_or_refuses_by_parameter(graph, model_path, capfd):
    g = graph(Parameter('device', value='cuda'), Parameter('precision', value='float16'),
              Parameter('compile_mode', value='cuda_graphs'))
    assert g.node.processor.upsampler.device.type == 'cpu'
    assert g.node.processor.upsampler.dtype == torch.float32
    err = capfd.readouterr().err
    assert "device 'cuda' was requested but CUDA is not available" in err
    assert 'running on the CPU' in err
    assert 'float16 needs CUDA; running in float32 on the CPU' in err
    assert 'cuda_graphs needs CUDA; running without on the CPU' in err
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        with pytest.raises(RuntimeError, match='device_fallback is false'):
            DepthSrNode(context=context, parameter_overrides=[
                Parameter('model_path', value=model_path), Parameter('device', value='cuda'),
                Parameter('device_fallback', value=False)])
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.slow
def test_ctrl_c_while_frames_flow_exits_cleanly(model_path):
    import subprocess
    import sys
    env = _process_env(FASTDDS_BUILTIN_TRANSPORTS=ONE_COMPUTER_TRANSPORTS)
    player = subprocess.Popen([sys.executable, '-m', 'depth_sr_ros.tools.player', '--ros-args',
                               '-p', 'rate:=30.0'], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    node = None
    try:
        for _ in range(3):
            node = subprocess.Popen(
                [sys.executable, '-m', 'depth_sr_ros.ros.node', '--ros-args', '-p',
                 f'model_path:={model_path}', '-p', 'diagnostics_period:=0.5'],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            end = time.monotonic() + 60
            line = ''
            while time.monotonic() < end and 'output (Hz)' not in line:
                line = node.stderr.readline()
                if not line:
                    break
            assert 'output (Hz)' in line
            node.send_signal(signal.SIGINT)
            _, err = node.communicate(timeout=30)
            assert node.returncode == 0, err[-2000:]
            assert 'Traceback' not in err, err[-2000:]
    finally:
        # A node left running after a failure would answer the next tests in this domain.
        for process in (player, node):
            if process is not None:
                process.kill()
                process.wait()


def test_diagnostics_report_rates_latency_drops_and_device(graph):
    from diagnostic_msgs.msg import DiagnosticArray
    g = graph(Parameter('diagnostics_period', value=0.5))
    arrays = []
    g.probe.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    pubs = g.connect(qos_profile_sensor_data)
    for i in range(10):
        send(pubs, 6_000_000_000 + i * 33_000_000)
        time.sleep(0.1)
    end = time.monotonic() + 10
    while time.monotonic() < end and not any(
            float({kv.key: kv.value for kv in a.status[0].values}['output (Hz)']) > 0
            for a in arrays):
        time.sleep(0.05)
    status = next(a.status[0] for a in arrays
                  if float({kv.key: kv.value for kv in a.status[0].values}['output (Hz)']) > 0)
    values = {kv.key: kv.value for kv in status.values}
    # The full name (two nodes in two namespaces are two items) and the colour camera's frame.
    assert status.name == '/depth_sr: depth super-resolution'
    assert status.hardware_id == 'colour_optical'
    assert set(values) >= {'input pairs (Hz)', 'output (Hz)', 'latency p50 (ms)',
                           'latency p95 (ms)', 'dropped pairs', 'bad frames', 'device'}
    assert values['device'] == 'cpu' and int(values['bad frames']) == 0
    assert values['last frame not published'] == 'none'
    assert {'pairs replaced by newer ones', 'images without a partner'} <= set(values)


def test_images_lost_in_transport_are_counted_in_diagnostics(graph):
    # Lost in DDS (large images, Fast DDS's default transports, best effort), an image reaches
    # no callback; the middleware's message-lost event is what counts it. Here the events are
    # handed in as the executor would: one process loses nothing.
    from types import SimpleNamespace
    from diagnostic_msgs.msg import DiagnosticArray
    try:
        from rclpy.event_handler import QoSSubscriptionEventType
    except ImportError:  # Humble
        from rclpy.qos_event import QoSSubscriptionEventType
    g = graph(Parameter('diagnostics_period', value=0.5))
    lost = {sub.topic_name: handler for sub in g.node.subscriptions
            for handler in sub.event_handlers
            if handler.event_type == QoSSubscriptionEventType.RCL_SUBSCRIPTION_MESSAGE_LOST}
    assert sorted(lost) == ['/color/image_raw', '/depth/image_raw']
    for topic, change in (('/depth/image_raw', 5), ('/color/image_raw', 2),
                          ('/depth/image_raw', 1)):
        lost[topic].callback(SimpleNamespace(total_count=0, total_count_change=change))
    arrays = []
    g.probe.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    key = 'images lost in transport (depth, colour)'
    end = time.monotonic() + 10
    while time.monotonic() < end and not arrays:
        time.sleep(0.05)
    assert arrays, 'no /diagnostics'
    assert {kv.key: kv.value for kv in arrays[-1].status[0].values}[key] == '6, 2'


def test_diagnostics_come_on_sim_time_without_a_clock(graph):
    # use_sim_time with nothing on /clock (a bag played without --clock): ROS time stands
    # still, and the reports that say no pairs arrive must still come.
    from diagnostic_msgs.msg import DiagnosticStatus
    g = graph(Parameter('diagnostics_period', value=0.5), Parameter('use_sim_time', value=True))
    warn = _status_at(_diagnostics(g), DiagnosticStatus.WARN)
    assert warn.message.startswith('no depth/colour pair for ')


def test_without_pairs_the_log_names_inputs_nobody_publishes_or_of_another_type(graph, capfd):
    # The usual mistakes with a real driver: a remap to a topic that does not exist, and a
    # compressed stream where the node takes raw images.
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage
    graph(Parameter('diagnostics_period', value=0.5))
    # Another participant (DDS refuses two types on one topic within one).
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    driver = Node('driver', context=context)
    try:
        driver.create_publisher(CompressedImage, 'color/image_raw', qos_profile_sensor_data)
        end = time.monotonic() + 30
        err = ''
        while time.monotonic() < end and 'is published as' not in err:
            time.sleep(0.5)
            err += capfd.readouterr().err
        time.sleep(1.0)  # two more reports
        err += capfd.readouterr().err
    finally:
        driver.destroy_node()
        rclpy.try_shutdown(context=context)
    assert 'nothing publishes /depth/image_raw' in err
    assert ('/color/image_raw is published as sensor_msgs/msg/CompressedImage, not '
            'sensor_msgs/msg/Image: name the raw topic and set depth_transport or '
            'color_transport') in err
    assert err.count('nothing publishes /depth/image_raw') == 1  # once, not every period


def test_a_first_pair_before_its_camera_info_is_counted_not_warned_of(graph, capfd):
    # A driver's first image may overtake its camera_info: the pair is skipped and counted,
    # with a notice, not a bad frame; the next pair, with its camera_info, is served.
    g = graph()
    pubs = g.connect(qos_profile_sensor_data)
    stamps = iter(range(11_000_000_000, 10**12, 33_000_000))
    end = time.monotonic() + 20
    while not g.node.counts['before_camera_info'] and time.monotonic() < end:
        depth_msg, color_msg, *_ = make_pair(next(stamps))
        pubs['color'].publish(color_msg)
        pubs['depth'].publish(depth_msg)
        time.sleep(0.05)
    assert g.node.counts['before_camera_info'] >= 1
    for _ in range(20):
        send(pubs, next(stamps))
        if g.wait_for('image', 1, timeout=1.0):
            break
    assert g.received['image'], 'no output once the camera_info came'
    assert g.node.counts['bad_frames'] == 0, g.node.counts
    err = capfd.readouterr().err
    assert 'a pair came before its camera_info, skipped' in err and 'frame skipped' not in err


def test_diagnostics_say_why_pairs_that_arrive_are_not_published(graph):
    # No camera_info at all: every pair is skipped, and the status says why, not only the log.
    from diagnostic_msgs.msg import DiagnosticStatus
    g = graph(Parameter('diagnostics_period', value=0.5))
    arrays = _diagnostics(g)
    pubs = g.connect(qos_profile_sensor_data)
    stamps = iter(range(9_000_000_000, 10**12, 33_000_000))

    def send_without_infos():
        depth_msg, color_msg, *_ = make_pair(next(stamps))
        pubs['color'].publish(color_msg)
        pubs['depth'].publish(depth_msg)
    warn = _status_at(arrays, DiagnosticStatus.WARN, 60, send_without_infos,
                      'pairs arrive, none published: ')
    assert 'camera_info' in warn.message
    values = {kv.key: kv.value for kv in warn.values}
    assert values['last frame not published'] in warn.message
    assert int(values['bad frames']) > 0


def _diagnostics(g):
    from diagnostic_msgs.msg import DiagnosticArray
    arrays = []
    g.probe.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    return arrays


def _status_at(arrays, level, timeout=30.0, action=None, prefix=''):
    """Return the first status of ``level`` (message starting ``prefix``), calling ``action``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [a.status[0] for a in list(arrays) if a.status[0].level == level
                 and a.status[0].message.startswith(prefix)]
        if found:
            return found[0]
        if action is not None:
            action()
        time.sleep(0.1)
    levels = [(a.status[0].level, a.status[0].message) for a in arrays]
    raise AssertionError(f'no status of level {level!r} within {timeout} s: {levels}')


def test_diagnostics_warn_then_go_stale_without_pairs_and_recover_when_they_come(graph, capfd):
    from diagnostic_msgs.msg import DiagnosticStatus
    g = graph(Parameter('diagnostics_period', value=0.5))
    arrays = _diagnostics(g)
    warn = _status_at(arrays, DiagnosticStatus.WARN)
    assert warn.message.startswith('no depth/colour pair for ')
    stale = _status_at(arrays, DiagnosticStatus.STALE)  # after max(3 periods, 3 s)
    assert stale.message.startswith('no depth/colour pair for ')
    assert float({kv.key: kv.value for kv in stale.values}['seconds without a pair']) >= 3.0
    assert {kv.key: kv.value for kv in stale.values}['latency p50 (ms)'] == '-'
    log = capfd.readouterr().err
    assert 'no pairs yet' in log and 'nan' not in log
    pubs = g.connect(qos_profile_sensor_data)
    stamps = iter(range(7_000_000_000, 10**12, 33_000_000))
    arrays.clear()
    ok = _status_at(arrays, DiagnosticStatus.OK, action=lambda: send(pubs, next(stamps)))
    values = {kv.key: kv.value for kv in ok.values}
    # make_pair's depth: one 3x4 hole in 40x30, wider than the samples' spacing.
    assert float(values['output valid (%)']) == pytest.approx(99.0, abs=0.1)
    assert float(values['covered by the depth camera (%)']) == pytest.approx(99.0, abs=0.1)


def test_diagnostics_warn_when_output_the_depth_camera_covers_comes_out_invalid(graph):
    # Every other depth row lost (what a registration that leaves the gaps between samples
    # empty gives): the depth camera covers the view, half of the output is invalid.
    from depth_sr_ros.ros.conversions import metres_to_image
    from diagnostic_msgs.msg import DiagnosticStatus
    g = graph(Parameter('diagnostics_period', value=0.5))
    arrays = _diagnostics(g)
    pubs = g.connect(qos_profile_sensor_data)
    stamps = iter(range(8_000_000_000, 10**12, 33_000_000))

    def send_gridded():
        depth_msg, color_msg, depth, _, (depth_info, color_info) = make_pair(next(stamps))
        depth[1::2] = np.nan
        gridded = metres_to_image(depth, '16UC1', depth_msg.header)
        for pub, msg in (('depth_info', depth_info), ('color_info', color_info),
                         ('color', color_msg), ('depth', gridded)):
            pubs[pub].publish(msg)

    warn = _status_at(arrays, DiagnosticStatus.WARN, 60, send_gridded, 'output ')
    assert 'valid where the depth camera covers' in warn.message
    values = {kv.key: kv.value for kv in warn.values}
    assert 45 < float(values['output valid (%)']) < 55
    assert float(values['covered by the depth camera (%)']) > 95


def test_the_readmes_parameter_client_snippet_sets_a_parameter(graph):
    # The README's pip-route stand-in for `ros2 param set`, against a live node.
    from rclpy.parameter_client import AsyncParameterClient
    g = graph()
    client = AsyncParameterClient(g.probe, 'depth_sr')
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters([Parameter('max_depth', value=4.0)])
    end = time.monotonic() + 10
    while not future.done() and time.monotonic() < end:
        time.sleep(0.05)
    assert future.done() and future.result().results[0].successful
    assert g.node.settings.max_depth == 4.0
    refused = client.set_parameters([Parameter('max_depth', value=0.05)])  # below min_depth
    end = time.monotonic() + 10
    while not refused.done() and time.monotonic() < end:
        time.sleep(0.05)
    result = refused.result().results[0]
    assert not result.successful and 'max_depth must be greater than min_depth' in result.reason
    # An array over the service arrives as array.array, which used to be refused as one value.
    offset = client.set_parameters([Parameter('alignment_offset', value=[3.0, 2.0])])
    end = time.monotonic() + 10
    while not offset.done() and time.monotonic() < end:
        time.sleep(0.05)
    assert offset.done() and offset.result().results[0].successful, offset.result()
    assert g.node.settings.alignment_offset == [3.0, 2.0]


def test_warnings_that_differ_only_in_their_numbers_are_throttled_as_one():
    # A time jump's size or an empty share changes every frame: keyed on the whole text, each
    # was new and the 5 s throttle never held.
    logged = []
    stand_in = type('Node', (), {'_warned': {}})()
    stand_in.get_logger = lambda: type('Logger', (), {'warning': staticmethod(logged.append)})
    for seconds in (3.25, 4.5, 12.0):
        DepthSrNode._warn(stand_in, f'stamps jumped back by {seconds} s: pairing starts again')
    DepthSrNode._warn(stand_in, 'another warning')
    assert logged == ['stamps jumped back by 3.25 s: pairing starts again', 'another warning']


def test_pairs_without_camera_info_get_the_graphs_hints(graph, capfd):
    # The hints ran only while no pair had come: a camera_info topic nobody publishes, or one
    # published once, latched, before the node's volatile subscription, went unexplained.
    from rclpy.qos import DurabilityPolicy
    from sensor_msgs.msg import Image
    g = graph(Parameter('diagnostics_period', value=0.5))
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    color_info = g.probe.create_publisher(CameraInfo, 'color/camera_info', latched)
    images = {name: g.probe.create_publisher(Image, f'{name}/image_raw',
                                             qos_profile_sensor_data)
              for name in ('depth', 'color')}
    wait_for_subscribers(g, dict(images, color_info=color_info))
    setting = 'qos_overrides./color/camera_info.subscription'
    hint = ('/color/camera_info is published once, latched (transient local), which reaches '
            f'only a transient-local, reliable subscription: set {setting}.durability: '
            f'transient_local and {setting}.reliability: reliable')
    err = ''
    end = time.monotonic() + 30
    stamp = 7_000_000_000
    while time.monotonic() < end and hint not in err:
        depth_msg, color_msg, _, _, _ = make_pair(stamp)
        images['color'].publish(color_msg)
        images['depth'].publish(depth_msg)
        stamp += 33_000_000
        time.sleep(0.1)
        err += capfd.readouterr().err
    assert g.node.counts['bad_frames'] > 0 and g.node.counts['published'] == 0
    assert hint in err
    assert 'nothing publishes /depth/camera_info' in err
