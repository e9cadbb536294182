"""
depth_sr_export: write a model file as ONNX, for onnxruntime (CPU, CUDA, TensorRT) or OpenVINO.

    depth_sr_export --model models/ahmf_x4.pt --output models/ahmf_x4.onnx
    depth_sr_export --model models/ahmf_x4.pt --output ahmf_x4_mixed.onnx --precision mixed

--precision float32 (default) writes a float32 graph, run by onnxruntime. --precision mixed
writes the graph of the node's mixed precision (defined at inference.PRECISIONS) in its CPU
form, the body in bfloat16. onnxruntime has no bfloat16 convolutions, so such a file runs on
OpenVINO (pip install openvino; the node and load_predictor choose it from the file), and only
pays off on CPUs with AMX or AVX512-BF16.

The graph takes 'depth' (1, 1, h, w) and 'guide' (1, 3, s*h, s*w), normalised as in
preprocessing.py, and returns 'depth_hr' (1, 1, s*h, s*w); h and w are free. The checkpoint's
architecture, scale, preprocessing and training facts travel along as JSON in the ONNX
metadata (key 'depth_sr_ros'), so onnx_predictor.OnnxPredictor needs nothing else
(onnx_export.py). After writing,
the export is checked against PyTorch on another input size and the difference printed.
"""

import argparse
import sys

from depth_sr_ros.checkpoint import CheckpointError
from depth_sr_ros.console import interruptible, number
from depth_sr_ros.files import missing_input, unwritable
from depth_sr_ros.onnx_export import export_onnx, EXPORT_PRECISIONS, parity

# The opsets torch 2.13's exporter writes the networks in (measured for AHMF and PAG-Net at
# every scale): before 11 ONNX has no bicubic Resize, after 23 torch refuses. A mixed export
# needs 13, the first with ReduceMean in bfloat16 (AHMF's), else OpenVINO cannot read it.
OPSETS = (11, 23)
MIXED_OPSET = 13


@interruptible('depth_sr_export')
def main(argv=None):
    """Entry point of depth_sr_export."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', required=True, help='model file (.pt)')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--opset', type=number(int, low=OPSETS[0], high=OPSETS[1]), default=18,
                        help=f'ONNX opset, {OPSETS[0]} to {OPSETS[1]}, at least {MIXED_OPSET} '
                             'for --precision mixed (default 18)')
    parser.add_argument('--precision', choices=EXPORT_PRECISIONS, default='float32',
                        help='float32 (onnxruntime) or mixed (bfloat16 body, OpenVINO)')
    args = parser.parse_args(argv)
    if args.precision == 'mixed' and args.opset < MIXED_OPSET:
        parser.error(f'--opset: --precision mixed needs at least {MIXED_OPSET}, not {args.opset}')
    problem = (unwritable(args, ('output',), inputs=('model',))
               or missing_input('--model', args.model))
    if not problem and not args.output.endswith('.onnx'):  # the loaders tell ONNX by it
        problem = f"--output '{args.output}': an ONNX file's name ends in .onnx"
    if problem:
        print(f'depth_sr_export: {problem}', file=sys.stderr)
        return 2
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
