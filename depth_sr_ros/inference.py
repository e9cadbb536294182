"""
Depth super-resolution on numpy arrays, with no ROS import.

Every upsampler (the network Predictor here, the baselines in baselines.py) has one interface::

    depth_hr = upsampler(depth_lr, color)

``depth_lr`` is (h, w) depth in metres where 0, NaN or inf mean "no measurement"; ``color`` is
the (s*h, s*w, 3) colour image (uint8, RGB unless the upsampler was built with 'bgr'), or a grey
(s*h, s*w) image. The result is float32 (s*h, s*w) depth in metres with NaN where there is no
estimate: under every invalid input pixel, and wherever the estimate is not positive.
DepthUpsampler does the shared work (checks, hole filling, normalisation, padding, marking);
subclasses only map normalised depth and guidance to normalised HR depth.
"""

import dataclasses
import json
import os
import time

from depth_sr_ros.checkpoint import CheckpointError, load_checkpoint
from depth_sr_ros.preprocessing import (
    color_to_unit, denormalize_depth, depth_range, fill_missing, normalize_depth,
    PREPROCESSING, valid_depth_mask)
import numpy as np
import torch


def _check_preprocessing(path, stored):
    """Raise CheckpointError unless a model's preprocessing is the one this package does."""
    for key in ('depth_normalization', 'rgb_order', 'rgb_scale'):
        if stored.get(key) != PREPROCESSING[key]:
            raise CheckpointError(path, f'preprocessing {key}={stored.get(key)!r} is not '
                                        f'supported (expected {PREPROCESSING[key]!r})')


def check_geometry(depth_shape, color_shape, scale):
    """Raise ValueError unless the colour image is exactly ``scale`` times the depth size."""
    h, w = depth_shape[:2]
    big_h, big_w = color_shape[:2]
    if min(h, w, big_h, big_w) <= 0:
        raise ValueError(f'empty image: depth {w}x{h}, colour {big_w}x{big_h}')
    if big_h % h or big_w % w:
        raise ValueError(f'colour {big_w}x{big_h} is not an integer multiple of depth {w}x{h} '
                         f'(ratios {big_w / w:.3g} and {big_h / h:.3g})')
    if big_h // h != big_w // w:
        raise ValueError(f'colour {big_w}x{big_h} and depth {w}x{h} have different width and '
                         f'height ratios ({big_w // w} and {big_h // h})')
    if big_h // h != scale:
        raise ValueError(f'colour {big_w}x{big_h} is {big_h // h}x depth {w}x{h}, but this '
                         f'upsampler works at {scale}x')


def select_device(requested='auto'):
    """Return the torch.device for 'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'."""
    if requested == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(requested)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f"device '{requested}' was requested but CUDA is not available "
                           f'(torch {torch.__version__}); use device auto or cpu')
    return device


def native_bfloat16(device):
    """
    Return True if ``device`` runs bfloat16 convolutions in hardware.

    CPUs: AMX or AVX512-BF16 (oneDNN uses them); elsewhere bf16 is emulated and slower than
    float32. CUDA: compute capability 8.0 (Ampere) or newer.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
    if device.type != 'cpu':
        return False
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def _pad_bottom_right(image, rows, cols):
    """Pad an (H, W) or (H, W, C) array by edge replication."""
    if rows == 0 and cols == 0:
        return image
    pad = [(0, rows), (0, cols)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode='edge')


class StageClock:
    """Wall time per stage of the last call: ``mark(name)`` closes the stage ``name``."""

    def __init__(self):
        """Start with no stages; set ``sync`` (e.g. torch.cuda.synchronize) for GPU timing."""
        self.times = {}
        self.sync = None
        self._last = time.perf_counter()

    def start(self):
        """Forget the previous call's times and start the clock."""
        self.times = {}
        self._last = time.perf_counter()

    def mark(self, name):
        """Add the time since the previous mark to stage ``name``."""
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._last
        self._last = now


class DepthUpsampler:
    """Shared input handling of every upsampler; subclasses implement ``_upsample``."""

    #: upsampling factor
    scale = 1
    #: the low-resolution size is padded to a multiple of this before ``_upsample``
    size_multiple = 1

    def __init__(self, color_order='rgb'):
        """Set the channel order of 3-channel colour input, 'rgb' or 'bgr'."""
        color_to_unit(np.zeros((1, 1, 3), np.uint8), color_order)  # validates the order
        self.color_order = color_order
        self.clock = StageClock()  # stage times of the last call, for diagnostics

    def _upsample(self, depth, guide):
        """Map normalised (h, w) depth and (s*h, s*w, 3) guidance to normalised HR depth."""
        raise NotImplementedError

    def __call__(self, depth_lr, color, color_order=None):
        """
        Return (s*h, s*w) float32 depth in metres, NaN where there is no estimate.

        ``color_order`` ('rgb' or 'bgr') overrides the order given at construction.
        """
        self.clock.start()
        depth_lr = np.asarray(depth_lr, dtype=np.float32)
        if depth_lr.ndim != 2:
            raise ValueError(f'depth must be a 2-D array, got shape {depth_lr.shape}')
        check_geometry(depth_lr.shape, np.shape(color), self.scale)
        h, w = depth_lr.shape
        s = self.scale
        valid = valid_depth_mask(depth_lr)
        if not valid.any():
            return np.full((h * s, w * s), np.nan, dtype=np.float32)
        low, high = depth_range(depth_lr, valid)
        depth = normalize_depth(fill_missing(depth_lr, valid), low, high)
        m = self.size_multiple
        depth = _pad_bottom_right(depth, -h % m, -w % m)
        out = self._infer(depth, color, color_order or self.color_order, (h * s, w * s))
        self.clock.mark('upsample')
        out = self._finish(out, low, high, valid)
        self.clock.mark('postprocess')
        return out

    def _infer(self, depth, color, order, shape):
        """Return normalised HR depth of ``shape`` from padded normalised LR depth."""
        s = self.scale
        guide = color_to_unit(color, order)
        guide = _pad_bottom_right(guide, depth.shape[0] * s - shape[0],
                                  depth.shape[1] * s - shape[1])
        self.clock.mark('preprocess')
        return self._upsample(depth, guide)[:shape[0], :shape[1]]

    def _finish(self, out, low, high, valid):
        """Return depth in metres: denormalised, NaN under invalid input and where not > 0."""
        out = denormalize_depth(out, low, high)
        s = self.scale
        no_source = np.repeat(np.repeat(~valid, s, axis=0), s, axis=1)
        with np.errstate(invalid='ignore'):
            out[no_source | ~(out > 0)] = np.nan
        return out


PRECISIONS = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
COMPILE_MODES = ('none', 'torch_compile', 'cuda_graphs')


@dataclasses.dataclass
class Acceleration:
    """
    How a Predictor runs its network; each switch can be measured on its own.

    precision: 'float32', 'float16' or 'bfloat16' (the network's weights and activations).
    channels_last: NHWC memory format (faster convolutions on tensor cores and oneDNN).
    compile_mode: 'none', 'torch_compile' (torch.compile, compiled per input size on first
        use) or 'cuda_graphs' (the forward pass captured once per input size and replayed;
        CUDA only).
    device_io: the colour image goes to the device as uint8 (through a pinned buffer on CUDA,
        4x fewer bytes than float32) and is converted there; the output is denormalised and
        masked on the device. False: all pre- and post-processing in numpy.
    cudnn_benchmark: let cuDNN time its algorithms for each new input size (CUDA only).
    """

    precision: str = 'float32'
    channels_last: bool = True  # measured faster on CPU (AHMF 4x -18 %, PAG-Net 4x -35 %)
    compile_mode: str = 'none'
    device_io: bool = True
    cudnn_benchmark: bool = True

    def check(self, device):
        """Raise ValueError for unknown values or a switch that ``device`` cannot do."""
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {tuple(PRECISIONS)}, not '
                             f'{self.precision!r}')
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f'compile_mode must be one of {COMPILE_MODES}, not '
                             f'{self.compile_mode!r}')
        if self.compile_mode == 'cuda_graphs' and device.type != 'cuda':
            raise ValueError(f'compile_mode=cuda_graphs needs a CUDA device, not {device}')


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
        # thread_local: a model loaded by another thread meanwhile does not break the capture
        with torch.cuda.graph(graph, capture_error_mode='thread_local'):
            output = self.model(*static)
        return graph, *static, output


class Predictor(DepthUpsampler):
    """A trained network behind the DepthUpsampler interface."""

    def __init__(self, model, scale, device='auto', color_order='rgb', acceleration=None):
        """
        Wrap a network.

        :param model: nn.Module mapping (B,1,h,w) depth and (B,3,s*h,s*w) RGB, both normalised as
            in preprocessing.py, to (B,1,s*h,s*w) depth.
        :param scale: the network's upsampling factor s.
        :param device: 'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'.
        :param color_order: channel order of 3-channel colour input, 'rgb' or 'bgr'.
        :param acceleration: an Acceleration (default: float32, channels-last, device I/O, nothing
            compiled).
        """
        super().__init__(color_order)
        self.device = select_device(device)
        self.acceleration = acceleration or Acceleration()
        self.acceleration.check(self.device)
        self.dtype = PRECISIONS[self.acceleration.precision]
        memory_format = (torch.channels_last if self.acceleration.channels_last
                         else torch.contiguous_format)
        self.memory_format = memory_format
        self.model = model.to(self.device, self.dtype, memory_format=memory_format).eval()
        if self.device.type == 'cuda':
            torch.backends.cudnn.benchmark = self.acceleration.cudnn_benchmark
        self.forward = self.model
        if self.acceleration.compile_mode == 'torch_compile':
            self.forward = torch.compile(self.model, dynamic=False)
        elif self.acceleration.compile_mode == 'cuda_graphs':
            self.forward = _GraphedForward(self.model, self.device)
        self.scale = int(scale)
        self.size_multiple = int(getattr(model, 'size_multiple', 1))
        self._pinned = {}  # (shape, dtype) -> (pinned host tensor, its last copy's event)

    @classmethod
    def from_checkpoint(cls, path, device='auto', color_order='rgb', acceleration=None):
        """Load a model file written by checkpoint.save_checkpoint."""
        device = select_device(device)
        model, info = load_checkpoint(path, device)
        _check_preprocessing(path, info['preprocessing'])
        predictor = cls(model, info['arch_kwargs']['scale'], device, color_order, acceleration)
        predictor.info = info
        return predictor

    def _run_model(self, depth_t, guide_t):
        """Run the network on device tensors; return (h, w) normalised depth on the device."""
        depth_t = depth_t.to(self.dtype).contiguous(memory_format=self.memory_format)
        guide_t = guide_t.to(self.dtype).contiguous(memory_format=self.memory_format)
        self.clock.mark('to_device')
        with torch.inference_mode():
            out = self.forward(depth_t, guide_t)
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

    def _infer(self, depth, color, order, shape):
        plain = color.dtype == np.uint8 and (color.ndim == 2 or color.shape[2] == 3)
        if not (self.acceleration.device_io and plain and order in ('rgb', 'bgr')):
            return super()._infer(depth, color, order, shape)  # numpy (and its checks)
        s = self.scale
        depth_t = self._upload(np.ascontiguousarray(depth))[None, None]
        color_t = self._upload(color)
        with torch.inference_mode():  # what preprocessing.color_to_unit does, on the device
            guide = color_t.float().mul_(PREPROCESSING['rgb_scale'])
            guide = guide[None, None] if guide.ndim == 2 else guide.permute(2, 0, 1)[None]
            if guide.shape[1] == 1:
                guide = guide.expand(1, 3, -1, -1)
            elif order == 'bgr':
                guide = guide.flip(1)
            pad = (0, depth.shape[1] * s - shape[1], 0, depth.shape[0] * s - shape[0])
            if any(pad):
                guide = torch.nn.functional.pad(guide, pad, mode='replicate')
        self.clock.mark('preprocess')
        return self._run_model(depth_t, guide)[:shape[0], :shape[1]]

    def _finish(self, out, low, high, valid):
        if not torch.is_tensor(out):  # _infer took the numpy path
            return super()._finish(out, low, high, valid)
        s = self.scale
        with torch.inference_mode():
            out = out.float() * (high - low) + low  # what preprocessing.denormalize_depth does
            invalid = self._upload(~valid)
            invalid = invalid.repeat_interleave(s, 0).repeat_interleave(s, 1)
            out = out.masked_fill(invalid | ~(out > 0), float('nan'))
            self.clock.mark('postprocess_device')
            out = out.cpu().numpy()
        self.clock.mark('to_host')
        return out


def onnx_providers(device='auto'):
    """Return the onnxruntime execution providers to use for ``device``, best first."""
    import onnxruntime
    available = onnxruntime.get_available_providers()
    wanted = ['CPUExecutionProvider']
    if device != 'cpu':
        wanted = ['TensorrtExecutionProvider', 'CUDAExecutionProvider'] + wanted
    return [p for p in wanted if p in available]


class OnnxPredictor(DepthUpsampler):
    """A network exported by depth_sr_export, run by onnxruntime (CPU, CUDA or TensorRT)."""

    def __init__(self, path, device='auto', color_order='rgb'):
        """
        Load an ONNX file written by depth_sr_export.

        :param path: the .onnx file.
        :param device: 'cpu', or 'auto'/'cuda' to prefer TensorRT and CUDA where installed.
        :param color_order: channel order of 3-channel colour input, 'rgb' or 'bgr'.
        """
        super().__init__(color_order)
        import onnxruntime
        from depth_sr_ros.export import METADATA_KEY
        if not os.path.isfile(path):
            raise CheckpointError(path, 'not found')
        try:
            self.session = onnxruntime.InferenceSession(path, providers=onnx_providers(device))
        except Exception as error:  # onnxruntime raises its own types for damaged files
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CheckpointError(path, f'not a readable ONNX model: {first_line}') from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise CheckpointError(path, f"no '{METADATA_KEY}' metadata; export it with "
                                        'depth_sr_export')
        self.info = json.loads(metadata[METADATA_KEY])
        _check_preprocessing(path, self.info['preprocessing'])
        self.scale = int(self.info['arch_kwargs']['scale'])
        self.device = self.session.get_providers()[0]

    def _upsample(self, depth, guide):
        feeds = {'depth': depth[None, None],
                 'guide': np.ascontiguousarray(guide.transpose(2, 0, 1))[None]}
        self.clock.mark('to_device')
        out = self.session.run(None, feeds)[0]
        self.clock.mark('model')
        return out[0, 0]


def load_predictor(path, device='auto', acceleration=None, color_order='rgb'):
    """Return an OnnxPredictor for a .onnx file, else a (PyTorch) Predictor."""
    if str(path).endswith('.onnx'):
        if acceleration is not None and acceleration != Acceleration():
            raise ValueError('precision, channels_last, compile_mode and device_io are PyTorch '
                             'options; for ONNX choose them at export or in onnxruntime')
        return OnnxPredictor(path, device, color_order)
    return Predictor.from_checkpoint(path, device, color_order, acceleration)
