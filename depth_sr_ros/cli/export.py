"""
depth_sr_export: write a model file as ONNX, for onnxruntime (CPU, CUDA, TensorRT) or OpenVINO.

    depth_sr_export --model models/ahmf_x4.pt --output models/ahmf_x4.onnx
    depth_sr_export --model models/ahmf_x4.pt --output ahmf_x4_mixed.onnx --precision mixed

--precision float32 (default) writes a float32 graph, run by onnxruntime. --precision mixed
writes the graph of the node's mixed precision on CPUs with bfloat16 units (the body in
bfloat16; the depth input layer, the global skip and the output in float32). onnxruntime has
no bfloat16 convolutions, so such a file runs on OpenVINO (pip install openvino; the node and
load_predictor choose it from the file), and only pays off on CPUs with AMX or AVX512-BF16.

The graph takes 'depth' (1, 1, h, w) and 'guide' (1, 3, s*h, s*w), normalised as in
preprocessing.py, and returns 'depth_hr' (1, 1, s*h, s*w); h and w are free. The checkpoint's
architecture, scale, preprocessing and training facts travel along as JSON in the ONNX
metadata (key 'depth_sr_ros'), so inference.OnnxPredictor needs nothing else. After writing,
the export is checked against PyTorch on another input size and the difference printed.
"""

import argparse
import json
import sys
import warnings

from depth_sr_ros.checkpoint import CheckpointError, load_checkpoint, METADATA_KEY
import numpy as np
import torch


EXPORT_PRECISIONS = ('float32', 'mixed')


class _Mixed(torch.nn.Module):
    """A network under bfloat16 autocast, as Predictor runs it in mixed precision."""

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
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer's notes on those checks, and deprecation
        torch.onnx.export(model, inputs, output, input_names=['depth', 'guide'],
                          output_names=['depth_hr'], opset_version=opset, dynamo=False,
                          dynamic_axes={'depth': {2: 'h', 3: 'w'},
                                        'guide': {2: 'sh', 3: 'sw'},
                                        'depth_hr': {2: 'sh', 3: 'sw'}})
    graph = onnx.load(output)
    entry = graph.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(info)
    onnx.save(graph, output)
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


def main(argv=None):
    """Entry point of depth_sr_export."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='model file (.pt)')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (default 18)')
    parser.add_argument('--precision', choices=EXPORT_PRECISIONS, default='float32',
                        help='float32 (onnxruntime) or mixed (bfloat16 body, OpenVINO)')
    args = parser.parse_args(argv)
    try:
        info = export_onnx(args.model, args.output, args.opset, precision=args.precision)
        difference = parity(args.model, args.output, precision=args.precision)
    except (CheckpointError, ImportError) as error:
        print(f'depth_sr_export: {error}', file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {info['arch']} {info['arch_kwargs']['scale']}x "
          f'{args.precision}; largest difference to PyTorch ({args.precision}) on a 31x45 '
          f'input: {difference:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
