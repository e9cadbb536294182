"""
ONNX export of a model file, in float32 or mixed precision.

The network with a free input size and the model's facts in its metadata; used by
depth_sr_export and depth_sr_benchmark. 'mixed' is the Predictor's mixed precision as
inference.PRECISIONS defines it, in its CPU form (the body in bfloat16).
"""

import io
import json
import warnings

from depth_sr_ros.checkpoint import load_checkpoint, METADATA_KEY
from depth_sr_ros.files import replacing
import numpy as np
import torch


EXPORT_PRECISIONS = ('float32', 'mixed')  # the inference.PRECISIONS an export can hold


class _Mixed(torch.nn.Module):
    """A network under bfloat16 autocast, as Predictor runs it in mixed precision on CPUs."""

    def __init__(self, network):
        """Wrap ``network``."""
        super().__init__()
        self.network = network

    def forward(self, depth, guide):
        """Return the network's float32 output with its body in bfloat16."""
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return self.network(depth, guide).float()


def export_onnx(model_path, output, opset=18, sample=(24, 32), precision='float32'):
    """
    Export the model file ``model_path`` to ``output``; return its checkpoint info.

    The graph is made in memory and written in one piece (files.replacing): a failure or
    Ctrl-C leaves no half-written file, nor one without its metadata.

    :param precision: 'float32' or 'mixed' (see the module docstring); recorded in the
        metadata as 'export_precision'.
    """
    import onnx
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f'precision must be one of {EXPORT_PRECISIONS}, not {precision!r}')
    model, info = load_checkpoint(model_path, 'cpu')
    info['export_precision'] = precision
    if precision == 'mixed':
        model = _Mixed(model)
    s = info['arch_kwargs']['scale']
    h, w = sample
    inputs = (torch.rand(1, 1, h, w), torch.rand(1, 3, h * s, w * s))
    # The TorchScript exporter handles the networks' free sizes with dynamic axes; the shape
    # checks in the networks are traced as constants, which is what they are for one graph.
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer's notes on those checks, and deprecation
        torch.onnx.export(model, inputs, exported, input_names=['depth', 'guide'],
                          output_names=['depth_hr'], opset_version=opset, dynamo=False,
                          dynamic_axes={'depth': {2: 'h', 3: 'w'},
                                        'guide': {2: 'sh', 3: 'sw'},
                                        'depth_hr': {2: 'sh', 3: 'sw'}})
    graph = onnx.load_model_from_string(exported.getvalue())
    entry = graph.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(info)
    with replacing(output) as f:
        f.write(graph.SerializeToString())
    return info


def parity(model_path, onnx_path, size=(31, 45), seed=0, precision='float32'):
    """
    Return the largest |ONNX - PyTorch| on random inputs of an LR size unlike the sample's.

    PyTorch runs in the export's precision; the ONNX file on the CPU with the runtime that
    load_predictor gives it (OpenVINO for a mixed export).
    """
    from depth_sr_ros.onnx_predictor import run_onnx
    model, info = load_checkpoint(model_path, 'cpu')
    s = info['arch_kwargs']['scale']
    rng = np.random.default_rng(seed)
    depth = rng.random((1, 1) + size, dtype=np.float32)
    guide = rng.random((1, 3, size[0] * s, size[1] * s), dtype=np.float32)
    with torch.inference_mode():
        network = _Mixed(model) if precision == 'mixed' else model
        expected = network(torch.from_numpy(depth), torch.from_numpy(guide)).numpy()
    got = run_onnx(onnx_path, depth, guide)
    return float(np.abs(got - expected).max())
