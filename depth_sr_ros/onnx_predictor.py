"""
A network exported by depth_sr_export: OnnxPredictor (onnxruntime) or OpenVinoPredictor.

A float32 export runs on onnxruntime (CPU, CUDA, TensorRT). A mixed-precision export (its
body in bfloat16) runs on OpenVINO, since onnxruntime has no bfloat16 convolutions;
``onnx_predictor`` picks by the file.
"""

import json
import os
import time

from depth_sr_ros.checkpoint import check_preprocessing, CheckpointError, METADATA_KEY
from depth_sr_ros.upsampler import DepthUpsampler
import numpy as np


def model_facts(path, metadata):
    """Return the checkpoint facts that depth_sr_export stored in an ONNX file's metadata."""
    if METADATA_KEY not in metadata:
        raise CheckpointError(path, f"no '{METADATA_KEY}' metadata; export it with "
                                    'depth_sr_export')
    try:
        info = json.loads(metadata[METADATA_KEY])
        check_preprocessing(path, info['preprocessing'])
        int(info['arch_kwargs']['scale'])
    except (ValueError, KeyError, TypeError) as error:  # damaged or hand-edited metadata
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(path, f"its '{METADATA_KEY}' metadata is damaged: "
                                    f'{type(error).__name__}: {error}') from None
    return info


def trt_cache_dir():
    """Return the folder for TensorRT engine and timing caches (XDG cache, per user)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'depth_sr_ros', 'tensorrt')


def onnx_providers(device='auto', available=None):
    """
    Return the onnxruntime providers for ``device``, best first, with their options.

    ``cuda:N`` puts ``device_id`` N on the TensorRT and CUDA providers (without it they run on
    GPU 0). TensorRT keeps its engines and timings in trt_cache_dir(), so an engine is built
    once per model, input size and GPU instead of at every start.

    :param available: the providers installed (default: onnxruntime.get_available_providers()).
    """
    if available is None:
        import onnxruntime
        available = onnxruntime.get_available_providers()
    wanted = [('CPUExecutionProvider', {})]
    if device != 'cpu':
        index = int(device.split(':')[1]) if device.startswith('cuda:') else 0
        cache = trt_cache_dir()
        wanted = [('TensorrtExecutionProvider', {
            'device_id': index, 'trt_engine_cache_enable': True,
            'trt_engine_cache_path': cache, 'trt_timing_cache_enable': True,
            'trt_timing_cache_path': cache}),
            ('CUDAExecutionProvider', {'device_id': index})] + wanted
    return [(name, options) for name, options in wanted if name in available]


def export_facts(path):
    """Return the checkpoint facts stored in an ONNX file (CheckpointError if unreadable)."""
    import onnx
    if not os.path.isfile(path):
        raise CheckpointError(path, 'not found')
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as error:  # onnx raises protobuf's own errors for damaged files
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(path, f'not a readable ONNX model: {first_line}') from None
    return model_facts(path, {p.key: p.value for p in proto.metadata_props})


def onnx_predictor(path, device='auto', color_order='rgb', fallback=True, warn=None):
    """Return the predictor for an ONNX file: OpenVINO for a mixed export, else onnxruntime."""
    if export_facts(path).get('export_precision', 'float32') == 'mixed':
        return OpenVinoPredictor(path, device, color_order, fallback=fallback, warn=warn)
    return OnnxPredictor(path, device, color_order, fallback, warn)


def run_onnx(path, depth, guide):
    """Run an ONNX file once on the CPU on normalised (1, 1, h, w) and (1, 3, sh, sw) arrays."""
    predictor = onnx_predictor(path, 'cpu')
    return predictor.run_graph(depth, guide)


class GraphPredictor(DepthUpsampler):
    """An exported graph behind the DepthUpsampler interface; subclasses define run_graph."""

    def run_graph(self, depth, guide):
        """Return the graph's output for normalised (1, 1, h, w) and (1, 3, sh, sw) arrays."""
        raise NotImplementedError

    def warm_up(self, shape=(60, 80)):
        """Run once at an LR size (TensorRT builds or loads its engine here); return seconds."""
        started = time.perf_counter()
        h, w = shape
        self.run_graph(np.zeros((1, 1, h, w), np.float32),
                       np.zeros((1, 3, h * self.scale, w * self.scale), np.float32))
        return time.perf_counter() - started

    def _upsample(self, depth, guide):
        depth = depth[None, None]
        guide = np.ascontiguousarray(guide.transpose(2, 0, 1))[None]
        self.clock.mark('to_device')
        out = self.run_graph(depth, guide)
        self.clock.mark('model')
        return out[0, 0]


class OnnxPredictor(GraphPredictor):
    """A network exported by depth_sr_export, run by onnxruntime (CPU, CUDA or TensorRT)."""

    runtime = 'onnxruntime'

    def __init__(self, path, device='auto', color_order='rgb', fallback=True, warn=None):
        """
        Load an ONNX file written by depth_sr_export.

        :param path: the .onnx file.
        :param device: 'cpu', 'auto' (TensorRT or CUDA where installed, else the CPU), 'cuda'
            or 'cuda:N' (a GPU provider is required, see ``fallback``).
        :param color_order: channel order of 3-channel colour input, 'rgb' or 'bgr'.
        :param fallback: when 'cuda' was asked for but no GPU provider loads: run on the CPU
            with a warning (True) or refuse with RuntimeError (False), as the PyTorch path.
        :param warn: a callable taking one message.
        """
        super().__init__(color_order)
        import onnxruntime
        if not os.path.isfile(path):
            raise CheckpointError(path, 'not found')
        providers = onnx_providers(device)
        try:
            self.session = onnxruntime.InferenceSession(
                path, providers=[name for name, _ in providers],
                provider_options=[options for _, options in providers])
        except Exception as error:  # onnxruntime raises its own types for damaged files
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CheckpointError(path, f'not a readable ONNX model: {first_line}') from None
        self.info = model_facts(path, self.session.get_modelmeta().custom_metadata_map)
        self.scale = int(self.info['arch_kwargs']['scale'])
        self.device = self.session.get_providers()[0]
        if str(device).startswith('cuda') and self.device not in (
                'TensorrtExecutionProvider', 'CUDAExecutionProvider'):
            installed = ', '.join(onnxruntime.get_available_providers())
            reason = (f"device '{device}' was requested but onnxruntime runs on {self.device} "
                      f'(installed: {installed}; onnxruntime-gpu or a Jetson build gives CUDA '
                      'and TensorRT)')
            if not fallback:
                raise RuntimeError(reason + ' and device_fallback is false')
            if warn is not None:
                warn(reason + '; running on the CPU')

    def run_graph(self, depth, guide):
        """Return the graph's output for normalised (1, 1, h, w) and (1, 3, sh, sw) arrays."""
        return self.session.run(None, {'depth': depth, 'guide': guide})[0]


class OpenVinoPredictor(GraphPredictor):
    """
    A network exported by depth_sr_export, run by OpenVINO on the CPU (pip install openvino).

    It runs mixed-precision exports (onnxruntime cannot) and, in depth_sr_benchmark, float32
    ones. OpenVINO would run a float32 graph in bfloat16 on CPUs with AMX or AVX512-BF16
    unless told otherwise, so its precision is pinned: 'f32' (the default) runs every layer
    in the precision the graph gives it; 'bf16' runs all of them in bfloat16 (measured in
    depth_sr_benchmark: 11x the mixed export's error).
    """

    runtime = 'OpenVINO'

    def __init__(self, path, device='cpu', color_order='rgb', precision='f32', fallback=True,
                 warn=None):
        """
        Load and compile an ONNX file written by depth_sr_export.

        :param device: 'cpu' or 'auto'; 'cuda...' runs on the CPU with a warning when
            ``fallback`` is true, else raises RuntimeError (OpenVINO has no CUDA).
        :param precision: 'f32' or 'bf16' (OpenVINO's INFERENCE_PRECISION_HINT).
        """
        super().__init__(color_order)
        if precision not in ('f32', 'bf16'):
            raise ValueError(f"OpenVINO precision must be 'f32' or 'bf16', not {precision!r}")
        self.info = export_facts(path)
        try:
            import openvino
        except ImportError:
            raise CheckpointError(path, 'runs on OpenVINO (a mixed-precision export), which '
                                        'is not installed: pip install openvino') from None
        if str(device).startswith('cuda'):
            reason = f"device '{device}' was requested but OpenVINO runs this model on the CPU"
            if not fallback:
                raise RuntimeError(reason + ' and device_fallback is false')
            if warn is not None:
                warn(reason)
        self.scale = int(self.info['arch_kwargs']['scale'])
        core = openvino.Core()
        self.compiled = core.compile_model(core.read_model(path), 'CPU',
                                           {'INFERENCE_PRECISION_HINT': precision})
        self.device = f'openvino CPU {precision}'

    def run_graph(self, depth, guide):
        """Return the graph's output for normalised (1, 1, h, w) and (1, 3, sh, sw) arrays."""
        return self.compiled({'depth': depth, 'guide': guide})[self.compiled.output(0)]
