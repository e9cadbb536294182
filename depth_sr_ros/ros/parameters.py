"""
The node's parameters: the one table of names, defaults, ranges and descriptions.

The node declares exactly these; pipeline.Settings takes its defaults from here;
config/sr.yaml and the README's parameter table (``markdown_table``) must agree with it
(test_layout.py checks both). No ROS import: the node turns each entry into a ParameterDescriptor.

The acceleration parameters (precision, channels_last, compile_mode, device_io) take their
defaults from inference.Acceleration and their choices from inference.py, so the node's
defaults build Acceleration(), which load_predictor requires of an .onnx model.
"""

import dataclasses

from depth_sr_ros.alignment import MAX_SHIFT
from depth_sr_ros.inference import Acceleration, COMPILE_MODES, PRECISION_CHOICES
from depth_sr_ros.paths import DEFAULT_MODEL


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: default (its type is the parameter's), description, limits."""

    default: object
    description: str
    low: float = None  # inclusive range of a number (or of each array element), None = any
    high: float = None
    choices: tuple = ()  # allowed values of a string
    live: bool = False  # may change while the node runs (else read-only)
    length: int = None  # number of values of an array parameter, None = any


_ACCELERATION = Acceleration()  # the defaults of the acceleration parameters
# image_transport's names: a compressed stream is published on <image topic>/<transport>.
TRANSPORTS = ('raw', 'compressed', 'compressedDepth')

PARAMETERS = {
    'model_path': Param('', 'model file, .pt (PyTorch) or .onnx (onnxruntime; OpenVINO for a '
                            'depth_sr_export --precision mixed file), or the name of a shipped '
                            f'one in models/; empty: {DEFAULT_MODEL} (AHMF 4x trained for camera '
                            'noise). A file that does not load is refused and the old model '
                            'stays', live=True),
    'device': Param('auto', "'auto' (cuda when available), 'cuda', 'cuda:N' or 'cpu'"),
    'device_fallback': Param(True, 'if the device is cuda but CUDA is not available: true = '
                                   'run on the CPU with a warning, false = refuse to start'),
    'precision': Param(_ACCELERATION.precision,
                       "the network's number format: auto = mixed on CPUs with bfloat16 units "
                       '(AMX, AVX512-BF16), else float32; mixed = bfloat16 (CPU) / float16 '
                       '(CUDA) body with the depth input in float32; float16 on CUDA only',
                       choices=PRECISION_CHOICES),
    'channels_last': Param(_ACCELERATION.channels_last,
                           'NHWC memory format for the network (measured faster on CPUs; '
                           'tensor cores want it too)'),
    'compile_mode': Param(_ACCELERATION.compile_mode,
                          "'none', 'torch_compile' (first frame of each size is slow) or "
                          "'cuda_graphs' (CUDA only)",
                          choices=COMPILE_MODES),
    'device_io': Param(_ACCELERATION.device_io,
                       'convert the colour image and the output on the device (uint8 upload '
                       'through a pinned buffer on CUDA) instead of in numpy'),
    'threads': Param(0, 'CPU threads for inference; 0 = PyTorch default', 0, 256),
    'queue_size': Param(10, 'messages per input kept while pairing', 1, 1000),
    'slop': Param(0.02, 'largest stamp difference of a pair, s (over half a frame period, '
                        'under a whole one: streams that are not synchronised sit up to half '
                        'a period apart, 16.7 ms at 30 Hz; must be above 0: approximate pairing '
                        'never pairs with 0, use exact_sync for identical stamps)', 1e-6, 10.0),
    'exact_sync': Param(False, 'pair only identical stamps'),
    'depth_transport': Param('raw', "how depth arrives: 'raw' (an Image on depth/image_raw), "
                                    "image_transport's 'compressedDepth' (png) or 'compressed' "
                                    '(16-bit png) on depth/image_raw/<transport>, decoded here',
                             choices=TRANSPORTS),
    'color_transport': Param('raw', "how colour arrives: 'raw' (an Image on color/image_raw) or "
                                    "image_transport's 'compressed' (jpeg, png) on "
                                    'color/image_raw/compressed, decoded here',
                             choices=('raw', 'compressed')),
    'output_size': Param([0, 0], 'output [width, height]: the colour image shrunk to it and '
                                 'its intrinsics scaled; [0, 0] = the colour size', 0, 100_000,
                         length=2),
    'max_output_pixels': Param(1920 * 1088, 'frames whose output grid (padded to a multiple of '
                                            'the scale) has more pixels are refused with a '
                                            'warning; default: 1920x1088',
                               1, 100_000_000),
    'depth_to_color': Param(None, 'raw depth only: [x, y, z, qx, qy, qz, qw], the transform '
                                  "from the depth camera's optical frame to the colour's, m; "
                                  'unset: looked up on tf2'),
    'alignment': Param('auto', "'auto': find where the registered depth sits against the "
                               'colour image from their edges, pooled over frames, and move it '
                               'into place when the offset is clear and at least a pixel of the '
                               "grid matched on and 3 output pixels; 'fixed': move it by "
                               "alignment_offset; 'off'",
                       choices=('auto', 'fixed', 'off'), live=True),
    'alignment_offset': Param([0.0, 0.0], "'fixed' alignment: [right, down], output pixels, by "
                                          'which the depth sits off the colour image (it is '
                                          'moved back by as much)', -1000.0, 1000.0, length=2,
                              live=True),
    'alignment_max_shift': Param(MAX_SHIFT, "largest offset the 'auto' alignment searches "
                                            'and applies, output pixels, rounded down to whole '
                                            "pixels of the grid matched on ('fixed' applies "
                                            'alignment_offset as given)', 0.0, 1000.0),
    'output_encoding': Param('input', "'input' (as the depth input), '16UC1' (mm) or '32FC1' "
                                      '(m)', choices=('input', '16UC1', '32FC1'), live=True),
    'min_depth': Param(0.1, 'depth below this is invalid, m', 0.0, 1000.0, live=True),
    'max_depth': Param(10.0, 'depth above this is invalid, m', 0.0, 1000.0, live=True),
    'publish_points': Param(False, 'publish depth_sr/points (PointCloud2)', live=True),
    'points_rgb': Param(True, 'colour the points (XYZRGB) instead of XYZ', live=True),
    'diagnostics_period': Param(5.0, 'seconds between diagnostics and the log line',
                                0.1, 3600.0),
}


def check_value(name, value):
    """Return why ``value`` is not allowed for parameter ``name``, or '' when it is."""
    param = PARAMETERS[name]
    if param.choices and value not in param.choices:
        return f'{name} must be one of {param.choices}, not {value!r}'
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if param.length is not None and len(values) != param.length:
        return f'{name} must have {param.length} values ({param.description}), not {value}'
    if param.low is not None and not all(param.low <= v <= param.high for v in values
                                         if isinstance(v, (int, float))):
        return f'{name} must be within [{param.low}, {param.high}], not {value}'
    if name == 'output_size' and 0 in values and any(values):
        return f'output_size must be [0, 0] (the colour size) or two sizes above 0, not {value}'
    return ''


def shown_default(name):
    """Return parameter ``name``'s default as the README's table shows it."""
    default = PARAMETERS[name].default
    if default is None:
        return 'unset'
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str):
        return repr(default) if default else "''"
    return str(default)


def markdown_table():
    """
    Return the README's table of the node's parameters: name, default, description.

    A parameter that cannot change while the node runs says '(restart to change)'.
    """
    rows = ['| parameter | default | |', '|---|---|---|']
    for name, param in PARAMETERS.items():
        restart = '' if param.live else ' (restart to change)'
        rows.append(f'| `{name}` | {shown_default(name)} | {param.description}{restart} |')
    return '\n'.join(rows)
