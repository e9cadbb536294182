"""
depth_sr_node: the ROS 2 node. The only module that creates ROS entities.

Subscribes (relative names, to be remapped): depth/image_raw, depth/camera_info,
color/image_raw, color/camera_info. Publishes depth_sr/image, depth_sr/camera_info and
optionally depth_sr/points, plus /diagnostics. Pairs depth and colour by stamp (message_filters
when importable, depth_sr_ros.ros.sync otherwise); the subscription callbacks only hand the newest
pair to one inference thread, so a slow model drops stale pairs (counted) instead of queueing.
Everything done to a pair lives in pipeline.py.
"""

import array
import copy
import re
import sys
import threading
import time

from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.inference import (
    Acceleration, check_onnx, is_onnx, load_predictor, select_device, warm)
from depth_sr_ros.paths import resolve_model_path
from depth_sr_ros.ros import DIAGNOSTICS_NAME
from depth_sr_ros.ros.conversions import decompress, ImageFormatError, message_type, stamp_ns
from depth_sr_ros.ros.entry import run_node
from depth_sr_ros.ros.extrinsics import ExtrinsicSource
from depth_sr_ros.ros.parameters import check_value, PARAMETERS
from depth_sr_ros.ros.pipeline import (
    CameraInfoNotYet, FrameProcessor, health, LatencyStats, LatestSlot, Settings)
from depth_sr_ros.ros.sync import (
    CameraInfoStore, COLOR, DEPTH, INPUT_NAMES, JumpDetector, PairingMonitor, QueueLedger,
    StampPairer)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy, qos_profile_sensor_data, QoSPolicyKind, QoSProfile, ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
try:  # Iron and newer; Humble has them in qos_event
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
import torch

try:  # a real ROS install has message_filters; pip does not
    import message_filters
except ImportError:
    message_filters = None

SETTING_NAMES = tuple(Settings.__dataclass_fields__)  # the parameters that may change live
PAIRING_CHECK_PERIOD = 1.0  # s
WARN_PERIOD = 5.0  # s between two logs of the same warning
# Pairs this many seconds after the first that still lack a camera_info are bad frames.
INFO_GRACE = 2.0  # s
NUMBER = re.compile(r'\d+(\.\d+)?')  # what _warn leaves out of a warning's kind
# /diagnostics says STALE after so many reporting periods without a pair (3 s at least).
STALE_PERIODS = 3
# Parameters that rclpy's Node declares itself (the node does not warn about them).
RCLPY_PARAMETERS = {'use_sim_time', 'start_type_description_service'}


def simple_filter():
    """Return a message_filters.SimpleFilter (newer releases define it in a submodule)."""
    try:
        return message_filters.SimpleFilter()
    except AttributeError:
        from message_filters.simple_filter import SimpleFilter
        return SimpleFilter()


def descriptor(name):
    """Return the ParameterDescriptor of parameter ``name`` from the PARAMETERS table."""
    param = PARAMETERS[name]
    text = param.description
    if param.choices:
        text += f" (one of: {', '.join(param.choices)})"
    out = ParameterDescriptor(description=text, read_only=not param.live)
    if param.low is not None and isinstance(param.default, float):
        out.floating_point_range = [FloatingPointRange(from_value=float(param.low),
                                                       to_value=float(param.high))]
    elif param.low is not None and isinstance(param.default, int):  # arrays: check_value
        out.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high))]
    return out


def _milliseconds(seconds):
    """Return seconds as a millisecond figure for /diagnostics, '-' for none (NaN)."""
    return '-' if seconds != seconds else f'{seconds * 1e3:.1f}'


def _percent(share):
    """Return a share as a percentage for /diagnostics, '-' for none (NaN)."""
    return '-' if share != share else f'{share * 100:.1f}'


def is_out_of_memory(error):
    """Return True for CUDA out of memory, and cuDNN/cuBLAS allocation failures (the same)."""
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ('CUDNN_STATUS_ALLOC_FAILED' in text
                                             or 'CUBLAS_STATUS_ALLOC_FAILED' in text))


def validate_settings(settings):
    """Return the reason why ``settings`` are unusable, or '' when they are fine."""
    for name in SETTING_NAMES:
        reason = check_value(name, getattr(settings, name))
        if reason:
            return reason
    if settings.max_depth <= settings.min_depth:
        return 'max_depth must be greater than min_depth'
    return ''


def _plain(value):
    """Return a parameter's value, an array as a list (the parameter service gives array.array)."""
    return list(value) if isinstance(value, array.array) else value


def sensor_qos():
    """
    Return a new copy of rclpy's sensor-data QoS (best effort, volatile, a small queue).

    rclpy writes a subscription's qos_overrides into the profile it is given: given the shared
    qos_profile_sensor_data, a camera_info's durability override made every later
    subscription of the process transient local, and the camera's images never matched.
    """
    return copy.copy(qos_profile_sensor_data)


class DepthSrNode(Node):
    """Guided depth super-resolution of a registered depth/colour camera pair."""

    def __init__(self, **kwargs):
        """Declare parameters, load the model and connect topics; raises on a bad model."""
        # Every parameter given (-p, --params-file, launch) is declared as it arrives, so that
        # a name the node does not know can be named in a warning instead of ignored.
        kwargs.setdefault('automatically_declare_parameters_from_overrides', True)
        super().__init__('depth_sr', **kwargs)
        given = set(self.get_parameters_by_prefix(''))
        for name, param in PARAMETERS.items():
            default = param.default
            if default is None:  # no default: declared by type, unset unless given
                default = Parameter.Type.DOUBLE_ARRAY
            if self.has_parameter(name):  # given: declared again with its type and range
                self.undeclare_parameter(name)
            self.declare_parameter(name, default, descriptor(name))
        unknown = sorted(name for name in given - set(PARAMETERS) - RCLPY_PARAMETERS
                         if not name.startswith('qos_overrides.'))
        if unknown:
            self.get_logger().warning(
                f"ignoring parameters this node does not have: {', '.join(unknown)} (its "
                f"parameters: {', '.join(PARAMETERS)}; the scale comes from the model file)")
            for name in unknown:  # so that setting them later fails instead of passing
                self.undeclare_parameter(name)
        # QoS overrides given at start: rclpy declares each read-only when the subscription
        # that reads it is made; declared here already, they would stay writable, and a change
        # at run time would be accepted and never applied.
        for name in given:
            if name.startswith('qos_overrides.'):
                self.undeclare_parameter(name)
        for name, param in PARAMETERS.items():  # the live ones: validate_settings below
            if name not in SETTING_NAMES and (param.choices or param.low is not None
                                              or param.length is not None):
                reason = check_value(name, self._value(name))
                if reason:
                    raise ValueError(reason)
        value = self._value
        try:
            fixed = value('depth_to_color')
        except ParameterUninitializedException:
            fixed = None
        self.extrinsics = ExtrinsicSource(self, fixed)  # GeometryError: start-up fails
        self.settings = Settings(**{name: value(name) for name in SETTING_NAMES})
        reason = validate_settings(self.settings)
        if reason:
            raise ValueError(reason)
        self._switches = 0  # runtime model switches asked for (_switch_to)
        self._switchers = []  # their threads
        self._restoring = None  # the model_path a failed switch sets back
        # Parameter changes, on the executor, and a switch's outcome, on its own thread, one
        # at a time (reentrant: setting model_path back runs the callback in that thread).
        self._switch_lock = threading.RLock()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        if value('threads') > 0:
            torch.set_num_threads(value('threads'))
        self.device = select_device(value('device'), value('device_fallback'),
                                    self.get_logger().warning)
        self.acceleration = self._choose_acceleration()
        self._model_value = value('model_path')  # as given: a failed switch sets it back
        self.model_path = resolve_model_path(self._model_value)
        self.processor = self._processor(self._load(self.model_path))
        self._log_model()

        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_depth = self.create_publisher(Image, 'depth_sr/image', reliable)
        self.pub_info = self.create_publisher(CameraInfo, 'depth_sr/camera_info', reliable)
        self.pub_points = self.create_publisher(PointCloud2, 'depth_sr/points', reliable)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self.infos = (CameraInfoStore(), CameraInfoStore())
        overrides = QoSOverridingOptions.with_default_policies()
        # A driver that publishes its camera_info once, latched (transient local), reaches
        # only a subscription that asks for it (transient local and reliable): the durability
        # of these two may be overridden too.
        info_overrides = QoSOverridingOptions(
            [*overrides.policy_kinds, QoSPolicyKind.DURABILITY])
        self._info_inputs = {}  # id of each camera_info subscription -> DEPTH or COLOR
        for index, topic in ((DEPTH, 'depth/camera_info'), (COLOR, 'color/camera_info')):
            sub = self.create_subscription(CameraInfo, topic, self._info_callback(index),
                                           sensor_qos(), qos_overriding_options=info_overrides)
            self._info_inputs[id(sub)] = index
        self.monitor = PairingMonitor(value('slop'), value('exact_sync'))
        self.pairer = None
        self._sync = None  # the message_filters synchronizer, when that is the backend
        self._jumps = JumpDetector(value('slop'))
        # received: depth and colour images; pairs: handed to the inference thread; published:
        # results sent; before_camera_info: pairs of the first INFO_GRACE seconds that came
        # before their camera_info; bad_frames: input that could not be used; failed_frames:
        # inference errors (CUDA out of memory, ...); cleared_after_jump: messages that a
        # message_filters synchronizer held when a time jump replaced it (already part of
        # dropped_pairs()).
        self.counts = {'received': 0, 'pairs': 0, 'published': 0, 'before_camera_info': 0,
                       'bad_frames': 0, 'failed_frames': 0, 'cleared_after_jump': 0}
        # Depth and colour images that DDS lost on the way (their middleware's message-lost
        # event): they never reach a callback, so nothing else counts them.
        self.lost = [0, 0]
        self._first_pair = None  # when the inference thread took its first pair (monotonic)
        # When the frame in progress began (monotonic; None between frames), and the skipped
        # and failed frames counted at the last /diagnostics report.
        self._frame_started = None
        self._unpublished_reported = 0
        self._connect_images(value('queue_size'), value('slop'), value('exact_sync'), overrides,
                             (value('depth_transport'), value('color_transport')))

        self.slot = LatestSlot()
        self.stats = LatencyStats()
        self._last_pair = time.monotonic()  # or the start: /diagnostics goes stale without pairs
        self._offset = (0.0, 0.0)  # the last frame's alignment, output pixels
        self._notices = set()
        self._warned = {}  # warning message -> when it was last logged
        self._problem = ''  # why the last frame that was not published was not
        self._problem_new = False  # set since the last report
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name='depth_sr_inference',
                                        daemon=True)
        self._worker.start()
        self._period = value('diagnostics_period')
        # On the steady clock: with use_sim_time and no /clock (a bag played without --clock,
        # or paused) ROS time stands still, and the reports that would say so never came.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self._period, self._report, clock=steady)
        self.create_timer(PAIRING_CHECK_PERIOD, self._check_pairing, clock=steady)

    def _value(self, name):
        return _plain(self.get_parameter(name).value)

    def _processor(self, upsampler):
        return FrameProcessor(upsampler, tuple(self._value('output_size')),
                              self._value('max_output_pixels'),
                              self._value('alignment_max_shift'))

    def _choose_acceleration(self):
        value = self._value
        acceleration = Acceleration(value('precision'), value('channels_last'),
                                    value('compile_mode'), value('device_io'))
        if self.device.type != 'cuda':
            if acceleration.precision == 'float16':
                self.get_logger().warning('float16 needs CUDA; running in float32 on the CPU '
                                          '(bfloat16 works on CPUs)')
                acceleration.precision = 'float32'
            if acceleration.compile_mode == 'cuda_graphs':
                self.get_logger().warning('cuda_graphs needs CUDA; running without on the CPU')
                acceleration.compile_mode = 'none'
        acceleration.check(self.device)  # ValueError for unknown values: start-up fails
        return acceleration

    def _load(self, path, warm_up=True):
        # An ONNX model with non-default precision/channels_last/compile_mode/device_io is
        # refused with load_predictor's reason rather than run without them.
        # The warm-up forward pass runs here at start-up (in _switch_to on a switch): a model
        # that cannot run is refused, and a failing compile or capture has fallen back to
        # eager (said once) before the model serves.
        predictor = load_predictor(path, device=str(self.device),
                                   acceleration=self.acceleration,
                                   fallback=self._value('device_fallback'),
                                   warn=self.get_logger().warning, warm_up=False)
        if warm_up:
            self._warm(predictor, path)
        return predictor

    def _warm(self, predictor, path, shape=None):
        """Run a model's warm-up forward pass (inference.warm) and log how long it took."""
        seconds = warm(predictor, path, shape)
        self.get_logger().info(f'{path}: warm-up forward pass {seconds:.2f} s')

    def _switch_to(self, asked, path, predictor=None):
        """
        Warm a new model up on its own thread, then let it serve (a runtime model switch).

        The warm-up (seconds on a CPU, longer with torch.compile) would otherwise hold the
        executor: images and camera_infos beyond the subscriptions' queues would be lost
        without a count. The old model serves until the new one has run once. If the new one
        cannot run, the old one keeps serving and model_path is set back to it. Of switches
        asked for in quick succession, the last one wins.

        :param asked: the model_path value set (``path``: the file it names).
        :param predictor: the file's predictor; None: built here (an ONNX file's session).
        """
        self._switches += 1
        number = self._switches

        def superseded():
            # A later switch was asked for, or the node stops: building or warming this model
            # would only hold the device (several CUDA or TensorRT sessions at once).
            return number != self._switches or self._stop.is_set()

        def run():
            # rclpy stores the value after the callback that started this thread returns:
            # set back before that, model_path would end at the failed model's.
            end = time.monotonic() + 5.0
            while (self.get_parameter('model_path').value != asked and not superseded()
                   and time.monotonic() < end):
                time.sleep(0.01)
            try:  # at the size the camera gives (a compile is for one size), else a default
                if superseded():
                    return
                model = predictor or self._load(path, warm_up=False)
                if superseded():
                    return
                self._warm(model, path, self.processor.lr_shape(model.scale))
            except Exception as error:  # as in the callback: the old model keeps serving
                with self._switch_lock:
                    if superseded():
                        return
                    self.get_logger().warning(
                        f'model switch failed: {error}; still serving {self.model_path}')
                    self._restoring = self._model_value
                    try:
                        self.set_parameters([Parameter('model_path', value=self._model_value)])
                    finally:
                        self._restoring = None
                return
            with self._switch_lock:
                if superseded():
                    return
                self.processor, self.model_path = self._processor(model), path
                self._model_value = asked
                self._log_model()
        self._switchers = [t for t in self._switchers if t.is_alive()]
        self._switchers.append(threading.Thread(target=run, name='depth_sr_model_switch',
                                                daemon=True))
        self._switchers[-1].start()

    def _log_model(self):
        upsampler = self.processor.upsampler
        options = getattr(upsampler, 'acceleration', None) or upsampler.runtime
        self.get_logger().info(
            f"model {self.model_path}: {upsampler.info['arch']} {upsampler.scale}x, device "
            f'{upsampler.device} ({options}); depth in: 16UC1 mm or 32FC1 m; output encoding '
            f"'{self.settings.output_encoding}'")

    def _connect_images(self, queue_size, slop, exact, overrides, transports):
        # A compressed stream is image_transport's: on the image topic (remapped as given)
        # plus /<transport>, a CompressedImage that _process decodes.
        topics = [(index, topic if transport == 'raw' else
                   f'{self.resolve_topic_name(topic)}/{transport}',
                   Image if transport == 'raw' else CompressedImage)
                  for (index, topic), transport in zip(
                      ((DEPTH, 'depth/image_raw'), (COLOR, 'color/image_raw')), transports)]
        if message_filters is not None:
            # Subscriber -> the node's arrival bookkeeping -> a relay filter -> the synchronizer.
            # The relays let the node replace the synchronizer (after a time jump) while the
            # subscriptions stay; the ledger counts what the synchronizer drops. Why each part
            # is needed: sync.py's docstring.
            self._sync_args = (queue_size, slop, exact)
            self._ledger = QueueLedger(queue_size)
            self._build_synchronizer()
            self._subscribers = []
            for index, topic, kind in topics:
                sub = self._image_subscription(index, topic, kind, overrides)
                sub.registerCallback(self._filter_callback(index))
                self._subscribers.append(sub)
            self.pairing_backend = 'message_filters'
        else:
            self.pairer = StampPairer(queue_size, slop, exact)
            for index, topic, kind in topics:
                self._image_subscription(index, topic, kind, overrides,
                                         self._image_callback(index))
            self.pairing_backend = 'depth_sr_ros.ros.sync'
        self.get_logger().info(f'pairing with {self.pairing_backend}: '
                               f"{'exact stamps' if exact else f'slop {slop} s'}, "
                               f'queue_size {queue_size}')

    def _image_subscription(self, index, topic, kind, overrides, callback=None):
        """
        Subscribe to image input ``index`` (a message_filters Subscriber without ``callback``).

        With a message-lost event that counts: camera images are large, and over Fast DDS's
        default transports best effort loses many (docs/dds.md). Where the middleware has no
        such event the subscription is made without.
        """
        def subscribe(**events):
            if callback is None:
                return message_filters.Subscriber(self, kind, topic, qos_profile=sensor_qos(),
                                                  qos_overriding_options=overrides, **events)
            return self.create_subscription(kind, topic, callback, sensor_qos(),
                                            qos_overriding_options=overrides, **events)
        lost = SubscriptionEventCallbacks(
            message_lost=lambda info: self._on_lost(index, info.total_count_change))
        try:
            return subscribe(event_callbacks=lost)
        except Exception as error:  # rclpy's UnsupportedEventTypeError
            if type(error).__name__ != 'UnsupportedEventTypeError':
                raise
            self.get_logger().info(f'{INPUT_NAMES[index]} images lost in transport are not '
                                   'counted: the middleware reports no lost messages')
            return subscribe()

    def _on_lost(self, index, count):
        self.lost[index] += count
        self._warn(f'{self.lost[index]} {INPUT_NAMES[index]} images lost in transport so far '
                   "(DDS): Fast DDS's default transports lose many large images best "
                   'effort; FASTDDS_BUILTIN_TRANSPORTS shared memory on one computer, '
                   'LARGE_DATA across computers (docs/dds.md)')

    def _build_synchronizer(self):
        """Connect a new message_filters synchronizer behind two new relay filters."""
        queue_size, slop, exact = self._sync_args
        relays = (simple_filter(), simple_filter())
        if exact:
            sync = message_filters.TimeSynchronizer(relays, queue_size)
        else:
            sync = message_filters.ApproximateTimeSynchronizer(relays, queue_size, slop)
        sync.registerCallback(self._on_synchronized)
        self._relays, self._sync = relays, sync

    # Callbacks: no inference here, only bookkeeping and a hand-over to the worker.

    def _info_callback(self, index):
        def callback(msg):
            self.infos[index].add(msg, stamp_ns(msg.header.stamp))
        return callback

    def _arrival_callback(self, index):
        def callback(msg):
            self.counts['received'] += 1
            stamp = stamp_ns(msg.header.stamp)
            self.monitor.arrived(index, time.monotonic(), stamp * 1e-9)
            jumped = self._jumps.check(index, stamp)
            if jumped is not None:
                self._on_time_jump(index, jumped.seconds)
        return callback

    def _on_time_jump(self, index, seconds):
        """Stamps jumped back (a bag restarted): drop the queued messages from before."""
        self._warn(f'{INPUT_NAMES[index]} stamps jumped back by {seconds:.3f} s (a bag that '
                   'loops, a driver that restarted?); messages queued for pairing from before '
                   'are dropped')
        # StampPairer drops them itself (and counts them). A message_filters synchronizer
        # would keep them: a message newer than every new one stays queued and, in a full
        # queue, evicts each new message first, so pairing would stall until the stamps
        # caught up. It is replaced by a new, empty one.
        if self.pairer is None:  # message_filters
            self.counts['cleared_after_jump'] += self._ledger.clear()
            self._build_synchronizer()

    def _filter_callback(self, index):
        arrived = self._arrival_callback(index)

        def callback(msg):
            arrived(msg)  # may replace the synchronizer (a time jump)
            self._ledger.add(index, stamp_ns(msg.header.stamp))
            self._relays[index].signalMessage(msg)
        return callback

    def _on_synchronized(self, depth_msg, color_msg):
        self._ledger.paired(stamp_ns(depth_msg.header.stamp), stamp_ns(color_msg.header.stamp))
        self._on_pair(depth_msg, color_msg)

    def _image_callback(self, index):
        arrived = self._arrival_callback(index)

        def callback(msg):
            arrived(msg)
            pair = self.pairer.add(index, stamp_ns(msg.header.stamp), msg)
            if pair is not None:
                self._on_pair(*pair)
        return callback

    def _on_pair(self, depth_msg, color_msg):
        self._last_pair = time.monotonic()
        self.monitor.paired(self._last_pair)
        self.stats.add_input()
        self.counts['pairs'] += 1
        self.slot.put((depth_msg, color_msg))

    def _on_set_parameters(self, params):
        with self._switch_lock:
            return self._set_parameters(params)

    def _set_parameters(self, params):
        changes = {p.name: _plain(p.value) for p in params}
        candidate = Settings(**{name: changes.get(name, getattr(self.settings, name))
                                for name in SETTING_NAMES})
        reason = validate_settings(candidate)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        predictor = None
        switch = 'model_path' in changes and changes['model_path'] != self._restoring
        if switch:
            path = resolve_model_path(changes['model_path'])
            # Read it before accepting, so that a bad file leaves the old model serving. An
            # ONNX file is only checked here: its runtime session (seconds on a GPU) is built,
            # and every model warmed up, on _switch_to's thread.
            try:
                if is_onnx(path):
                    check_onnx(path, self.acceleration)
                else:
                    predictor = self._load(path, warm_up=False)
            except Exception as error:  # whatever the file does, the old model keeps serving
                reason = f'{error}; still serving {self.model_path}'
                self.get_logger().warning(f'model switch refused: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        self.settings = candidate
        if switch:
            self._switch_to(changes['model_path'], path, predictor)
        return SetParametersResult(successful=True)

    # The inference thread.

    def _work(self):
        while not self._stop.is_set():
            pair = self.slot.get(timeout=0.2)
            if pair is None:
                continue
            if self._first_pair is None:
                self._first_pair = time.monotonic()
            self._frame_started = time.monotonic()
            try:  # until the frame is published or counted as not: /diagnostics reads it
                if not self._handle(*pair):
                    return
            finally:
                self._frame_started = None

    def _handle(self, depth_msg, color_msg):
        """Process, publish and count one pair; return False when the node shuts down."""
        try:
            result = self._process(depth_msg, color_msg)
        except (ImageFormatError, ValueError) as error:
            if (isinstance(error, CameraInfoNotYet)
                    and time.monotonic() - self._first_pair < INFO_GRACE):
                # A driver publishes each image and its camera_info together, but the
                # first pair may arrive before the camera_info: no fault to warn of.
                self.counts['before_camera_info'] += 1
                for notice in self._first_time([
                        f'a pair came before its camera_info, skipped ({error}); counted '
                        "under 'pairs before a camera_info' in /diagnostics"]):
                    self.get_logger().info(notice)
                return True
            self.counts['bad_frames'] += 1
            text = str(error)
            self._not_published(text if text.startswith('frame skipped') else
                                f'frame skipped: {text}')
            return True
        except Exception as error:  # never let one frame end the inference thread
            if not self.context.ok():
                return False
            self.counts['failed_frames'] += 1
            failure = (is_out_of_memory(error), type(error).__name__,
                       (str(error).splitlines() or [''])[0])
        else:
            failure = None
        if failure is not None:  # handled here, where the traceback's tensors are free
            out_of_memory, kind, first_line = failure
            if out_of_memory:
                self._not_published(
                    f'frame dropped: out of GPU memory ({first_line}); the node goes on with '
                    'the next pair (a smaller input, precision:=float16 or another model '
                    'needs less)')
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            else:
                self._not_published(f'frame dropped: inference failed: {kind}: {first_line}')
            return True
        # rclpy refuses one logging call site with two severities: one call each.
        for notice in self._first_time(result.notices):
            self.get_logger().info(notice)
        for advice in self._first_time(result.advice):
            self.get_logger().warning(advice)
        for warning in result.warnings:
            self._warn(warning)
        try:
            self._publish(result)
        except Exception as error:
            if not self.context.ok():
                return False  # shut down (Ctrl-C) while this frame was computed
            self.counts['failed_frames'] += 1
            self._not_published(f'publishing failed: {type(error).__name__}: {error}')
            return True
        self.counts['published'] += 1
        now = self.get_clock().now().nanoseconds
        latency = (now - stamp_ns(depth_msg.header.stamp)) * 1e-9
        if not self.stats.add_output(latency, result.coverage):
            for notice in self._first_time([
                    "depth stamps over a minute behind or a second ahead of the node's "
                    'clock (stamps of 0, a bag replayed without use_sim_time, or a camera '
                    'clock not synchronised with this computer): latency is not reported '
                    'for them']):
                self.get_logger().info(notice)
        self._offset = result.offset
        return True

    def _not_published(self, reason):
        """Warn why a frame was not published; /diagnostics keeps it (the period's, the last)."""
        self._problem, self._problem_new = reason, True
        self._warn(reason)

    def _first_time(self, notices):
        """Return the notices not said before, and remember them."""
        new = [n for n in dict.fromkeys(notices) if n not in self._notices]
        self._notices.update(new)
        return new

    def _process(self, depth_msg, color_msg):
        """Run the pipeline on one pair with its camera_infos and, for raw depth, extrinsic."""
        depth_msg, color_msg = (decompress(msg) if isinstance(msg, CompressedImage) else msg
                                for msg in (depth_msg, color_msg))
        return self.processor.process_pair(depth_msg, color_msg, self.infos[DEPTH],
                                           self.infos[COLOR], self.settings, self.extrinsics)

    def _warn(self, message):
        """
        Log a warning, each kind at most once per WARN_PERIOD seconds.

        A kind is the message without its numbers: a time jump's size, a share or the free
        memory of an out-of-memory error change from frame to frame.
        """
        now = time.monotonic()
        kind = NUMBER.sub('#', message)
        if len(self._warned) > 200:  # keep the dict bounded
            self._warned.clear()
        if now - self._warned.get(kind, -WARN_PERIOD) >= WARN_PERIOD:
            self._warned[kind] = now
            self.get_logger().warning(message)

    def _publish(self, result):
        # camera_info first: if publishing fails, no image goes out without it.
        self.pub_info.publish(result.camera_info)
        self.pub_depth.publish(result.depth)
        if result.points is not None:
            self.pub_points.publish(result.points)

    def _input_hints(self):
        """Return what the ROS graph says of inputs: a topic nobody publishes, or another type."""
        hints = []
        for sub in self.subscriptions:
            if sub.msg_type not in (Image, CameraInfo, CompressedImage):
                continue
            expected = message_type(sub.msg_type)
            types = sorted({i.topic_type for i in
                            self.get_publishers_info_by_topic(sub.topic_name)})
            if not types:
                hints.append(f'nothing publishes {sub.topic_name} (remap the input to the '
                             "camera driver's topic)")
            elif sub.msg_type is CameraInfo and (latched := self._latched_hint(sub)):
                hints.append(latched)
            elif expected not in types:
                hints.append(
                    f"{sub.topic_name} is published as {', '.join(types)}, not {expected}" + (
                        ': name the raw topic and set depth_transport or color_transport '
                        "(image_transport's name for it), or republish it raw"
                        if message_type(CompressedImage) in types else ''))
        return hints

    def _latched_hint(self, sub):
        """
        Return what ``sub`` needs for a camera_info that every publisher only latches, or ''.

        A message published once, latched (transient local), reaches a subscription that joins
        later only when it is transient local and reliable: DDS sends no stored message to a
        best-effort reader (Fast DDS not between processes).
        """
        index = self._info_inputs[id(sub)]  # the remapped name may say anything
        if self.infos[index].newest is not None:
            return ''
        publishers = self.get_publishers_info_by_topic(sub.topic_name)
        if not publishers or not all(p.qos_profile.durability ==
                                     DurabilityPolicy.TRANSIENT_LOCAL for p in publishers):
            return ''
        setting = f'qos_overrides.{sub.topic_name}.subscription'
        needed = []
        if sub.qos_profile.durability != DurabilityPolicy.TRANSIENT_LOCAL:
            needed.append(f'{setting}.durability: transient_local')
        if sub.qos_profile.reliability != ReliabilityPolicy.RELIABLE and all(
                p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers):
            needed.append(f'{setting}.reliability: reliable')
        if not needed:
            return ''
        return (f'{sub.topic_name} is published once, latched (transient local), which '
                'reaches only a transient-local, reliable subscription: set '
                + ' and '.join(needed))

    def _check_pairing(self):
        message = self.monitor.check(time.monotonic())
        if message:
            self.get_logger().warning(message)

    def unpaired(self):
        """Return the images that left the pairing queues without a partner."""
        if self.pairer is not None:
            return sum(self.pairer.counts.unpaired)
        return self._ledger.dropped  # message_filters counts nothing; the ledger follows it

    def dropped_pairs(self):
        """Return pairs replaced before inference plus images that never found a partner."""
        return self.slot.replaced + self.unpaired()

    def _report(self):
        period = self.stats.take(self._period)
        started = self._frame_started  # before now: a frame begun since is no negative time
        now = time.monotonic()
        idle = now - self._last_pair
        stale_after = max(STALE_PERIODS * self._period, self.monitor.timeout)
        unpublished = self.counts['bad_frames'] + self.counts['failed_frames']
        level, message = health(period, idle, stale_after,
                                None if started is None else now - started,
                                unpublished - self._unpublished_reported)
        self._unpublished_reported = unpublished
        values = {
            'input pairs (Hz)': f'{period["input_hz"]:.1f}',
            'output (Hz)': f'{period["output_hz"]:.1f}',
            'latency p50 (ms)': _milliseconds(period['p50']),
            'latency p95 (ms)': _milliseconds(period['p95']),
            'output valid (%)': _percent(period['valid_share']),
            'covered by the depth camera (%)': _percent(period['expected_share']),
            'seconds without a pair': f'{idle:.1f}',
            'depth sat off the colour by (px right, down)': '{:+.1f}, {:+.1f}'.format(
                *self._offset),
            'alignment': (self.settings.alignment if self.settings.alignment != 'auto' else
                          self.processor.aligner.estimate.reason or 'auto: edges match'),
            'dropped pairs': str(self.dropped_pairs()),
            # Its two parts: a model slower than the camera replaces pairs; depth and colour
            # at different rates (15 and 30 Hz) leave images without a partner, as they should.
            'pairs replaced by newer ones': str(self.slot.replaced),
            'images without a partner': str(self.unpaired()),
            'images lost in transport (depth, colour)': '{}, {}'.format(*self.lost),
            'pairs before a camera_info': str(self.counts['before_camera_info']),
            'bad frames': str(self.counts['bad_frames']),
            'failed frames': str(self.counts['failed_frames']),
            'last frame not published': self._problem or 'none',
            'device': str(self.processor.upsampler.device),
        }
        if period['pairs'] and not period['outputs'] and self._problem_new:
            message = f'{message}: {self._problem}'
        self._problem_new = False
        # The node's full name: two cameras' nodes in two namespaces are two items in an
        # aggregator; the colour camera's frame says which camera.
        status = DiagnosticStatus(
            name=f'{self.get_fully_qualified_name()}{DIAGNOSTICS_NAME}',
            hardware_id=self.infos[COLOR].newest.header.frame_id if self.infos[COLOR].newest
            else '',
            level=getattr(DiagnosticStatus, level), message=message)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)
        if self.counts['pairs'] == 0:
            self.get_logger().info(f'no pairs yet ({idle:.0f} s since the start)')
        elif period['pairs'] == 0:
            self.get_logger().info(message)
        else:
            self.get_logger().info(', '.join(f'{k} {v}' for k, v in values.items()))
        # No pair, or pairs without a camera_info to serve them with: the graph may say why.
        no_info = self.counts['bad_frames'] and any(store.newest is None for store in self.infos)
        if self.counts['pairs'] == 0 or no_info:
            for hint in self._first_time(self._input_hints()):
                self.get_logger().warning(hint)

    def stop(self):
        """Stop the inference thread (waits for the frame in progress and a model's warm-up)."""
        self._stop.set()
        self.slot.close()
        until = time.monotonic() + 10.0
        self._worker.join(timeout=10.0)
        for switcher in self._switchers:
            switcher.join(timeout=max(0.0, until - time.monotonic()))


def usage():
    """Return the --help text: how to start the node and every parameter with its default."""
    lines = ['usage: depth_sr_node [--ros-args -p NAME:=VALUE ... -r FROM:=TO ...]', '',
             'Guided depth super-resolution: depth registered to the colour camera, on its '
             'pixel grid.', '', 'parameters:']
    for name, param in PARAMETERS.items():
        default = 'unset' if param.default is None else repr(param.default)
        live = '' if param.live else ' [restart to change]'
        lines.append(f'  {name} (default {default}){live}: {param.description}')
    return '\n'.join(lines)


def main(args=None):
    """Entry point of depth_sr_node."""
    return run_node(DepthSrNode, 'depth_sr_node',
                    (CheckpointError, RuntimeError, ValueError, ParameterException), args,
                    usage())


if __name__ == '__main__':
    sys.exit(main())
