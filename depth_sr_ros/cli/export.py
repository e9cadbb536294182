"""
depth_sr_export: write a model file as ONNX, for onnxruntime (CPU, CUDA, TensorRT).

    depth_sr_export --model models/ahmf_x4.pt --output models/ahmf_x4.onnx

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


def export_onnx(model_path, output, opset=18, sample=(24, 32)):
    """Export the model file ``model_path`` to ``output``; return its checkpoint info."""
    import onnx
    model, info = load_checkpoint(model_path, 'cpu')
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


def parity(model_path, onnx_path, size=(31, 45), seed=0):
    """Return the largest |ONNX - PyTorch| on random inputs of an LR size unlike the sample's."""
    import onnxruntime
    model, info = load_checkpoint(model_path, 'cpu')
    s = info['arch_kwargs']['scale']
    rng = np.random.default_rng(seed)
    depth = rng.random((1, 1) + size, dtype=np.float32)
    guide = rng.random((1, 3, size[0] * s, size[1] * s), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(depth), torch.from_numpy(guide)).numpy()
    session = onnxruntime.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    got = session.run(None, {'depth': depth, 'guide': guide})[0]
    return float(np.abs(got - expected).max())


def main(argv=None):
    """Entry point of depth_sr_export."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='model file (.pt)')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--opset', type=int, default=18)
    args = parser.parse_args(argv)
    try:
        info = export_onnx(args.model, args.output, args.opset)
    except CheckpointError as error:
        print(f'depth_sr_export: {error}', file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {info['arch']} {info['arch_kwargs']['scale']}x; largest "
          f'difference to PyTorch on a 31x45 input: {parity(args.model, args.output):.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
