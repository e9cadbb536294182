"""
The network Predictor: a trained model behind the DepthUpsampler interface (upsampler.py).

Acceleration holds the switches that change how it runs (precision, memory format,
compilation, device I/O); each can be measured on its own with depth_sr_benchmark.
load_predictor picks the PyTorch Predictor or, for .onnx files, onnx_predictor's choice
(onnxruntime, or OpenVINO for a mixed-precision export).
"""

import argparse
import dataclasses
import re
import time

from depth_sr_ros.checkpoint import check_preprocessing, CheckpointError, load_checkpoint
from depth_sr_ros.onnx_predictor import export_facts, onnx_predictor
from depth_sr_ros.preprocessing import color_to_unit_torch, finish_depth_torch
from depth_sr_ros.upsampler import DepthUpsampler
import numpy as np
import torch


def device_problem(requested):
    """Return why ``requested`` names no device ('auto', 'cpu', 'cuda', 'cuda:N'), or ''."""
    if re.fullmatch(r'auto|cpu|cuda(:\d+)?', str(requested)):
        return ''
    return f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not '{requested}'"


def device_option(text):
    """
    Return ``text``: an argparse ``type`` for a command's --device (device_problem's names).

    A CUDA device is refused here when torch has no CUDA, so that a command says so in one line
    before any work (the node instead falls back to the CPU: its device_fallback parameter).
    """
    problem = device_problem(text)
    if not problem and text.startswith('cuda') and not torch.cuda.is_available():
        problem = (f"'{text}': CUDA is not available (torch {torch.__version__}); use auto or "
                   'cpu')
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def select_device(requested='auto', fallback=False, warn=None):
    """
    Return the torch.device for 'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'.

    :param fallback: when CUDA is requested but not available, run on the CPU (saying so
        through ``warn``) instead of raising RuntimeError.
    :param warn: a callable taking one message (e.g. a logger's warning).
    """
    requested = str(requested)
    if requested == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    problem = device_problem(requested)
    if problem:
        raise ValueError(problem)
    device = torch.device(requested)
    if device.type == 'cuda' and not torch.cuda.is_available():
        reason = (f"device '{requested}' was requested but CUDA is not available "
                  f'(torch {torch.__version__})')
        if not fallback:
            raise RuntimeError(reason + ' and device_fallback is false; use device auto or cpu')
        if warn is not None:
            warn(reason + '; running on the CPU')
        return torch.device('cpu')
    if device.type == 'cuda':
        count = torch.cuda.device_count()
        # A bare 'cuda' is resolved once, so that every later use names the same GPU.
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            present = ', '.join(f'cuda:{i} ({torch.cuda.get_device_name(i)})'
                                for i in range(count))
            raise RuntimeError(f"device '{requested}' does not exist; present: {present}")
        device = torch.device('cuda', index)
    return device


def native_bfloat16(device):
    """
    Return True if ``device`` runs bfloat16 convolutions in hardware.

    CPUs: AMX or AVX512-BF16 (oneDNN uses them); elsewhere bf16 is emulated and slower than
    float32. CUDA: compute capability 8.0 (Ampere) or newer.
    """
    device = torch.device(device)
    if device.type == 'cuda':  # this device's capability, not the current one's
        return (torch.cuda.is_available()
                and torch.cuda.get_device_capability(device) >= (8, 0))
    if device.type != 'cpu':
        return False
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


# Weight and activation dtypes: the one definition of each precision, which the node's
# parameter table, depth_sr_eval and depth_sr_export refer to. 'mixed': float32 weights, the
# body under autocast (MIXED_DTYPE: bfloat16 on CPUs, float16 on CUDA) with the depth input
# layer, the global skip and the final addition in float32 (networks/common.in_float32).
PRECISIONS = {'mixed': torch.float32, 'float32': torch.float32, 'float16': torch.float16,
              'bfloat16': torch.bfloat16}
MIXED_DTYPE = {'cpu': torch.bfloat16, 'cuda': torch.float16}
# What a user may ask for: 'auto' resolves by device (resolve_precision).
PRECISION_CHOICES = ('auto',) + tuple(PRECISIONS)


def resolve_precision(precision, device):
    """
    Return the precision that 'auto' means on ``device``.

    'mixed' on CPUs with AMX or AVX512-BF16 (measured within 0.5 mm mean / 5 mm p99 of float32
    and about twice as fast, see the README), float32 elsewhere. On CUDA, measured on an H100
    (README): mixed float16 was no faster than float32 for AHMF 4x; float16 with CUDA graphs
    was 4x faster at 0.2 mm mean error, so it is offered by parameter, not chosen by 'auto'.
    """
    if precision != 'auto':
        return precision
    device = torch.device(device)
    return 'mixed' if device.type == 'cpu' and native_bfloat16(device) else 'float32'


COMPILE_MODES = ('none', 'torch_compile', 'cuda_graphs')


@dataclasses.dataclass
class Acceleration:
    """
    How a Predictor runs its network; each switch can be measured on its own.

    precision: one of PRECISION_CHOICES: 'auto' (resolve_precision) or a PRECISIONS key (the
        network's weights and activations; 'mixed' is defined there).
    channels_last: NHWC memory format (faster convolutions on tensor cores and oneDNN).
    compile_mode: 'none', 'torch_compile' (torch.compile, compiled per input size on first
        use) or 'cuda_graphs' (the forward pass captured once per input size and replayed;
        CUDA only).
    device_io: the colour image goes to the device as uint8 (through a pinned buffer on CUDA,
        4x fewer bytes than float32) and is converted there; the output is denormalised and
        masked on the device. False: all pre- and post-processing in numpy.
    cudnn_benchmark: let cuDNN time its algorithms for each new input size (CUDA only).
    """

    precision: str = 'auto'
    channels_last: bool = True  # measured faster on CPU (AHMF 4x -18 %, PAG-Net 4x -35 %)
    compile_mode: str = 'none'
    device_io: bool = True
    cudnn_benchmark: bool = True

    def check(self, device):
        """Raise ValueError for unknown values or a switch that ``device`` cannot do."""
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f'precision must be one of {PRECISION_CHOICES}, not '
                             f'{self.precision!r}')
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f'compile_mode must be one of {COMPILE_MODES}, not '
                             f'{self.compile_mode!r}')
        if self.compile_mode == 'cuda_graphs' and device.type != 'cuda':
            raise ValueError(f'compile_mode=cuda_graphs needs a CUDA device, not {device}')
        if self.precision == 'bfloat16' and device.type == 'cuda' and not native_bfloat16(
                device):
            raise ValueError(f'{torch.cuda.get_device_name(device)} has no fast bfloat16 '
                             '(Ampere or newer has): use precision float16')


class _GraphedForward:
    """A network's forward pass captured as a CUDA graph per input size, then replayed."""

    MAX_GRAPHS = 4  # input sizes kept; each holds its own static buffers

    def __init__(self, model, device):
        self.model = model
        self.device = device
        self.graphs = {}  # input shapes -> (graph, static depth, static guide, static output)

    def __call__(self, depth, guide):
        key = (tuple(depth.shape), tuple(guide.shape))
        with torch.cuda.device(self.device):  # capture and replay on the model's device
            if key not in self.graphs:
                if len(self.graphs) >= self.MAX_GRAPHS:
                    self.graphs.clear()
                self.graphs[key] = self._capture(depth, guide)
            graph, static_depth, static_guide, output = self.graphs[key]
            static_depth.copy_(depth)
            static_guide.copy_(guide)
            graph.replay()
        return output

    def _capture(self, depth, guide):
        static = (depth.clone(), guide.clone())
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up (cuDNN autotuning) outside the capture
                self.model(*static)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: a model loaded by another thread meanwhile does not break it
            context = torch.cuda.graph(graph, capture_error_mode='thread_local')
        except TypeError:  # torch before 2.1 (JetPack 5) has no capture_error_mode
            context = torch.cuda.graph(graph)
        with context:
            output = self.model(*static)
        return graph, *static, output


class Predictor(DepthUpsampler):
    """A trained network behind the DepthUpsampler interface."""

    def __init__(self, model, device='auto', color_order='rgb', acceleration=None, warn=None):
        """
        Wrap a network.

        :param model: nn.Module mapping (B,1,h,w) depth and (B,3,s*h,s*w) RGB, both normalised as
            in preprocessing.py, to (B,1,s*h,s*w) depth; its ``scale`` attribute is s. The
            Predictor takes it over: it is moved to the device and precision in place.
        :param device: 'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'.
        :param color_order: channel order of 3-channel colour input, 'rgb' or 'bgr'.
        :param acceleration: an Acceleration (default: Acceleration(), precision 'auto':
            mixed on CPUs with bfloat16 units, else float32; channels-last, device I/O, nothing
            compiled).
        :param warn: a callable taking one message: how a failed compile or capture is said.
        """
        if not isinstance(getattr(model, 'scale', None), int):
            raise ValueError(f'{type(model).__name__} has no integer scale attribute (its '
                             'upsampling factor)')
        super().__init__(color_order)
        self.device = select_device(device)
        self.acceleration = dataclasses.replace(acceleration or Acceleration())
        self.acceleration.precision = resolve_precision(self.acceleration.precision,
                                                        self.device)
        self.acceleration.check(self.device)
        if (warn is not None and self.device.type == 'cpu'
                and self.acceleration.precision in ('mixed', 'bfloat16')
                and not native_bfloat16(self.device)):
            warn(f'precision {self.acceleration.precision}: this CPU has no bfloat16 units (AMX '
                 'or AVX512-BF16), so bfloat16 is emulated (AHMF 4x in mixed precision took 10x '
                 "float32's time on an AVX2-only CPU); precision 'auto' picks float32 here")
        self.dtype = PRECISIONS[self.acceleration.precision]
        self.autocast = (MIXED_DTYPE[self.device.type]
                         if self.acceleration.precision == 'mixed' else None)
        memory_format = (torch.channels_last if self.acceleration.channels_last
                         else torch.contiguous_format)
        self.memory_format = memory_format
        self.model = model.to(self.device, self.dtype, memory_format=memory_format).eval()
        if self.device.type == 'cuda':
            torch.backends.cudnn.benchmark = self.acceleration.cudnn_benchmark
        self.forward = self.model
        self.warn = warn
        self.eager_because = ''  # why a compiled or captured forward gave way to eager
        if self.acceleration.compile_mode == 'torch_compile':
            self.forward = torch.compile(self.model, dynamic=False)
        elif self.acceleration.compile_mode == 'cuda_graphs':
            self.forward = _GraphedForward(self.model, self.device)
        self.scale = int(model.scale)  # the network's own, never a second copy
        self._pinned = {}  # (shape, dtype) -> (pinned host tensor, its last copy's event)

    @classmethod
    def from_checkpoint(cls, path, device='auto', color_order='rgb', acceleration=None,
                        warn=None):
        """Load a model file written by checkpoint.save_checkpoint."""
        device = select_device(device)
        model, info = load_checkpoint(path, device)
        check_preprocessing(path, info['preprocessing'])
        predictor = cls(model, device, color_order, acceleration, warn)
        predictor.info = info
        return predictor

    def warm_up(self, shape=(60, 80)):
        """
        Run one forward pass at an LR size; return its seconds.

        A compile or capture that fails here (or on any later frame) falls back to eager once,
        with a warning; an eager failure raises, so a model that cannot run is refused at load.
        """
        started = time.perf_counter()
        h, w = shape
        s = self.scale
        depth = torch.zeros((1, 1, h, w), device=self.device)
        guide = torch.zeros((1, 3, h * s, w * s), device=self.device)
        self._run_model(depth, guide)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started

    def _forward(self, depth_t, guide_t):
        """Run the compiled or captured forward; give way to eager for good if it fails."""
        if self.forward is self.model:
            return self.model(depth_t, guide_t)
        try:
            return self.forward(depth_t, guide_t)
        except torch.cuda.OutOfMemoryError:
            raise  # not the compiler's fault: the node drops this frame
        except Exception as error:  # Triton missing, BackendCompilerFailed, capture errors
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self.eager_because = (f'{self.acceleration.compile_mode} failed '
                                  f'({type(error).__name__}: {first}); running eager')
            if self.warn is not None:
                self.warn(self.eager_because)
            self.forward = self.model
            return self.model(depth_t, guide_t)

    def synchronize_stages(self, enabled=True):
        """Wait for the device at each stage mark, so that the clock's stage times are true."""
        sync = None
        if enabled and self.device.type == 'cuda':
            device = self.device
            sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
        self.clock.sync = sync

    def _run_model(self, depth_t, guide_t):
        """Run the network on device tensors; return (h, w) normalised depth on the device."""
        depth_t = depth_t.to(self.dtype).contiguous(memory_format=self.memory_format)
        guide_t = guide_t.to(self.dtype).contiguous(memory_format=self.memory_format)
        self.clock.mark('to_device')
        mixed = torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16,
                               enabled=self.autocast is not None)
        with torch.inference_mode(), mixed:
            out = self._forward(depth_t, guide_t)
        self.clock.mark('model')
        return out[0, 0]

    def _upsample(self, depth, guide):
        depth_t = torch.from_numpy(depth)[None, None].to(self.device)
        guide_t = torch.from_numpy(np.ascontiguousarray(guide.transpose(2, 0, 1)))[None]
        out = self._run_model(depth_t, guide_t.to(self.device)).float().cpu().numpy()
        self.clock.mark('to_host')
        return out

    def _upload(self, array):
        """Copy a numpy array to the device (through a reused pinned buffer on CUDA)."""
        if any(stride < 0 for stride in array.strides):  # a flipped view, e.g. BGR as [..., ::-1]
            array = np.ascontiguousarray(array)
        tensor = torch.from_numpy(array)
        if self.device.type != 'cuda':
            return tensor
        key = (array.shape, array.dtype.str)
        if key not in self._pinned:
            if len(self._pinned) >= 16:  # sizes keep changing: do not keep them all
                self._pinned.clear()
            self._pinned[key] = (torch.empty(array.shape, dtype=tensor.dtype, pin_memory=True),
                                 torch.cuda.Event())
        pinned, copied = self._pinned[key]
        copied.synchronize()  # the previous copy out of this buffer has finished
        pinned.copy_(tensor)
        on_device = pinned.to(self.device, non_blocking=True)
        copied.record(torch.cuda.current_stream(self.device))
        return on_device

    def _run(self, depth, color, order, low, high, valid):
        plain = color.dtype == np.uint8 and (color.ndim == 2 or color.ndim == 3
                                             and color.shape[2] == 3)
        if not (self.acceleration.device_io and plain and order in ('rgb', 'bgr')):
            return super()._run(depth, color, order, low, high, valid)  # numpy, its checks
        depth_t = self._upload(np.ascontiguousarray(depth))[None, None]
        color_t = self._upload(color)
        with torch.inference_mode():
            guide = color_to_unit_torch(color_t, order)
        self.clock.mark('preprocess')
        out = self._run_model(depth_t, guide)
        with torch.inference_mode():
            out = finish_depth_torch(out, low, high, self._upload(~valid), self.scale)
            self.clock.mark('postprocess_device')
            out = out.cpu().numpy()
        self.clock.mark('to_host')
        return out


def is_onnx(path):
    """Return whether ``path`` names an ONNX export (served by onnxruntime, not PyTorch)."""
    return str(path).endswith('.onnx')


def load_predictor(path, device='auto', acceleration=None, color_order='rgb', fallback=True,
                   warn=None, warm_up=True):
    """
    Return onnx_predictor's predictor for a .onnx file, else a (PyTorch) Predictor, warmed up.

    The warm-up runs one forward pass before the model is handed out, so that a model that
    cannot run is refused at load (at start-up, or on a run-time switch while the old model
    keeps serving), a failing compile or capture has already fallen back to eager, and
    TensorRT has built or loaded its engine. ``fallback`` and ``warn`` as select_device.
    """
    if is_onnx(path):
        _refuse_pytorch_options(path, acceleration)  # onnx_predictor reads the file's facts
        predictor = onnx_predictor(path, str(device), color_order, fallback, warn)
    else:
        predictor = Predictor.from_checkpoint(
            path, select_device(device, fallback, warn), color_order, acceleration, warn)
    if warm_up:
        warm(predictor, path)
    return predictor


def _refuse_pytorch_options(path, acceleration):
    """Raise ValueError when ``acceleration`` asks an ONNX file for PyTorch-only options."""
    # Acceleration() is also the node's default: its parameter table takes it from here.
    if acceleration is not None and acceleration != Acceleration():
        raise ValueError(f'{path}: precision, channels_last, compile_mode and device_io are '
                         'PyTorch options; for ONNX choose them at export or in onnxruntime')


def check_onnx(path, acceleration=None):
    """
    Refuse an ONNX file that cannot be read, or PyTorch options for one, without running it.

    Raises CheckpointError (the file) or ValueError (the options). Building the runtime's
    session, which can take seconds on a GPU, is left to onnx_predictor.
    """
    _refuse_pytorch_options(path, acceleration)
    export_facts(path)


def warm(predictor, path, shape=None):
    """
    Run ``predictor``'s warm-up forward pass; keep and return its seconds (``warm_seconds``).

    :param shape: the LR (h, w) to warm up at: the camera's, where it is known, since a compile,
        a CUDA graph or a TensorRT engine is made for one size (default: the predictor's).
    Raises CheckpointError naming ``path`` when the pass fails: the model cannot run.
    """
    try:
        predictor.warm_seconds = predictor.warm_up(*([tuple(shape)] if shape else []))
    except Exception as error:  # an eager forward pass that fails: the model cannot run
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(path, f'the warm-up forward pass failed: '
                                    f'{type(error).__name__}: {first}') from None
    return predictor.warm_seconds
