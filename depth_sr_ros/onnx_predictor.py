"""OnnxPredictor: a network exported by depth_sr_export, run by onnxruntime."""

import json
import os

from depth_sr_ros.checkpoint import check_preprocessing, CheckpointError, METADATA_KEY
from depth_sr_ros.upsampler import DepthUpsampler
import numpy as np


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
        check_preprocessing(path, self.info['preprocessing'])
        self.scale = int(self.info['arch_kwargs']['scale'])
        self.device = self.session.get_providers()[0]

    def _upsample(self, depth, guide):
        feeds = {'depth': depth[None, None],
                 'guide': np.ascontiguousarray(guide.transpose(2, 0, 1))[None]}
        self.clock.mark('to_device')
        out = self.session.run(None, feeds)[0]
        self.clock.mark('model')
        return out[0, 0]
