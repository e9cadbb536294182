"""
Model files: weights stored together with everything needed to use them.

A checkpoint is one ``torch.save`` file holding a dict of plain types only, so that
``torch.load(..., weights_only=True)`` reads it::

    format_version  int, FORMAT_VERSION
    arch            'ahmf' or 'pag_net' (a key of networks.MODELS)
    arch_kwargs     keyword arguments of the network's constructor (includes 'scale')
    state_dict      parameter name -> tensor (float32, or float16 to halve the file)
    preprocessing   depth units, normalisation, RGB order (see preprocessing.py)
    training        facts about how the weights were made: data, steps, metrics, ...

Every problem found while loading raises CheckpointError with one line that names the file.
"""

import os
import re

from depth_sr_ros.files import replacing
from depth_sr_ros.networks import build_model, MODELS
from depth_sr_ros.preprocessing import PREPROCESSING
import torch

FORMAT_VERSION = 1
REQUIRED_FIELDS = ('format_version', 'arch', 'arch_kwargs', 'state_dict', 'preprocessing',
                   'training')
# Key of the checkpoint facts (JSON) in an exported ONNX file's metadata.
METADATA_KEY = 'depth_sr_ros'
STORAGE_DTYPES = {'float32': torch.float32, 'float16': torch.float16}
# The torch the model files are made and tested with (requirements.txt pins it; the README
# says to pip install it). An older one, as a distribution's python3-torch, may not read
# them: torch 1.13's weights-only loader refuses a float.
TESTED_TORCH = '2.13.0'


def older_torch(version=None):
    """Return whether a torch version (default: the installed one) is older than TESTED_TORCH."""
    def release(text):
        return tuple(int(part) for part in re.findall(r'\d+', text.split('+')[0])[:2])
    return release(version or torch.__version__) < release(TESTED_TORCH)


class CheckpointError(ValueError):
    """A model file is missing, unreadable or does not match what it claims to hold."""

    def __init__(self, path, problem):
        """Build the one-line message "model file 'PATH': PROBLEM"."""
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model file '{path}': {problem}")


def _check_plain(value, where):
    """Raise TypeError if ``value`` holds anything but plain types and tensors."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f'{where}: key {key!r} is not a string')
            _check_plain(item, f'{where}.{key}')
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f'{where}[{i}]')
    elif not isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        raise TypeError(f'{where}: {type(value).__name__} is not a plain type')


def save_checkpoint(path, model, arch, arch_kwargs, preprocessing, training,
                    storage_dtype='float32'):
    """
    Write a checkpoint atomically (a temporary file renamed into place).

    :param path: file to write.
    :param model: the network whose weights to store.
    :param arch: architecture name, a key of networks.MODELS.
    :param arch_kwargs: constructor arguments that rebuild ``model`` with build_model().
    :param preprocessing: dict of plain types (the scale is arch_kwargs['scale'] alone).
    :param training: dict of plain types describing how the weights were made.
    :param storage_dtype: 'float32' or 'float16' (half the size; loaded back as float32).
    """
    if arch not in MODELS:
        raise ValueError(f'unknown architecture {arch!r}; known: {sorted(MODELS)}')
    dtype = STORAGE_DTYPES[storage_dtype]
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to('cpu')
        state[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        state[key] = state[key].clone()
    payload = {
        'format_version': FORMAT_VERSION,
        'arch': arch,
        'arch_kwargs': dict(arch_kwargs),
        'state_dict': state,
        'preprocessing': dict(preprocessing),
        'training': dict(training),
    }
    _check_plain(payload, 'checkpoint')
    atomic_save(payload, path)


def atomic_save(obj, path):
    """torch.save ``obj`` into a temporary file beside ``path``, then rename it into place."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replacing(path, mode=0o644) as f:  # model files are meant to be shared
        torch.save(obj, f)


def read_checkpoint(path):
    """Read and validate a checkpoint's dict without building the network."""
    if not os.path.isfile(path):
        raise CheckpointError(path, 'not found' if not os.path.exists(path) else 'not a file')
    if str(path).endswith('.onnx'):
        raise CheckpointError(path, 'an ONNX export, not a PyTorch model file (.pt); the node '
                                    'and depth_sr_bag serve it')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if 'weights_only' in first_line or 'weights only' in first_line.lower():
            # torch's advice to load with weights_only=False (running code from the file) is
            # wrong for a file that is not a model: say what it is not, nothing more.
            first_line = 'no model data in it'
        if older_torch():
            first_line += (f' (torch {torch.__version__} is installed; the model files are '
                           f'made and tested with torch {TESTED_TORCH}: pip install it)')
        raise CheckpointError(
            path, f'not a readable checkpoint (corrupt or truncated?): {first_line}') from None
    if not isinstance(payload, dict):
        raise CheckpointError(path, f'holds a {type(payload).__name__}, not a checkpoint dict')
    missing = [field for field in REQUIRED_FIELDS if field not in payload]
    if missing:
        raise CheckpointError(path, f"missing field(s) {', '.join(missing)}; "
                                    'not written by depth_sr_ros.checkpoint.save_checkpoint?')
    if payload['format_version'] != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {payload['format_version']!r} is not "
                                    f'supported (this package reads {FORMAT_VERSION})')
    if not isinstance(payload['arch'], str) or payload['arch'] not in MODELS:
        raise CheckpointError(path, f"unknown architecture {payload['arch']!r} "
                                    f"(known: {', '.join(sorted(MODELS))})")
    # Each field of the right type: a file edited or written by other code is refused here with
    # its reason, not with a TypeError or AttributeError deep in the loader.
    for field in ('arch_kwargs', 'preprocessing', 'training', 'state_dict'):
        if not isinstance(payload[field], dict):
            raise CheckpointError(path, f'{field} is a {type(payload[field]).__name__}, not a '
                                        'dict')
    odd = [str(key) for key, value in payload['state_dict'].items()
           if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if odd:
        raise CheckpointError(path, f'state_dict entries that are not named tensors: '
                                    f'{_describe(odd)}')
    return payload


def check_preprocessing(path, stored):
    """Raise CheckpointError unless a model's preprocessing is the one this package does."""
    for key in ('depth_normalization', 'rgb_order', 'rgb_scale'):
        if stored.get(key) != PREPROCESSING[key]:
            raise CheckpointError(path, f'preprocessing {key}={stored.get(key)!r} is not '
                                        f'supported (expected {PREPROCESSING[key]!r})')


def _describe(names, limit=4):
    names = sorted(names)
    shown = ', '.join(names[:limit])
    return shown + (f' (+{len(names) - limit} more)' if len(names) > limit else '')


def load_checkpoint(path, device='cpu'):
    """
    Build the network stored in ``path`` and load its weights strictly.

    :return: (model, info): the float32 network in eval mode on ``device``, and the checkpoint
        dict without its state_dict (arch, arch_kwargs, preprocessing, training).
    """
    payload = read_checkpoint(path)
    arch, kwargs = payload['arch'], payload['arch_kwargs']
    try:
        model = build_model(arch, **kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f'cannot build {arch} with {kwargs}: {error}') from None
    expected = model.state_dict()
    stored = payload['state_dict']
    problems = []
    missing = set(expected) - set(stored)
    unexpected = set(stored) - set(expected)
    if missing:
        problems.append(f'missing keys {_describe(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_describe(unexpected)}')
    wrong_shape = [f'{key} {tuple(stored[key].shape)} != {tuple(expected[key].shape)}'
                   for key in sorted(set(stored) & set(expected))
                   if stored[key].shape != expected[key].shape]
    if wrong_shape:
        problems.append(f'shape mismatch {_describe(wrong_shape, 2)}')
    if problems:
        raise CheckpointError(path, f'weights do not match {arch}({kwargs}): '
                                    + '; '.join(problems))
    bad = [key for key, tensor in stored.items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(path, f'non-finite weights in {_describe(bad)}')
    model.load_state_dict(stored, strict=True)
    model.to(device).eval()
    info = {key: value for key, value in payload.items() if key != 'state_dict'}
    return model, info


def blend_checkpoints(path, toward, weight):
    """
    Return (model, info) with the weights (1 - weight) * path's + weight * toward's.

    Both files must hold the same network (architecture and constructor arguments), e.g. a
    fine-tune and the file it started from: averaging such weights trades what the fine-tune
    learnt against what it forgot (Wortsman et al., "Robust fine-tuning of zero-shot models",
    CVPR 2022). ``info`` is path's; its training record is the blend's, holding both files'
    records.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f'blend weight must be within [0, 1], not {weight}')
    model, info = load_checkpoint(path)
    other, other_info = load_checkpoint(toward)
    mine = (info['arch'], info['arch_kwargs'])
    theirs = (other_info['arch'], other_info['arch_kwargs'])
    if mine != theirs:
        raise CheckpointError(toward, f'holds {theirs[0]} {theirs[1]}, not {mine[0]} {mine[1]} '
                                      f"like '{path}': only the same network can be blended")
    lerp_weights_(model, other.state_dict(), weight)
    info['training'] = {'blend': {
        'model': os.fspath(path), 'toward': os.fspath(toward), 'weight': float(weight),
        'model_training': info['training'], 'toward_training': other_info['training']}}
    return model, info


def lerp_weights_(model, state, weight):
    """Move ``model``'s float tensors in place toward ``state``'s (same keys) by ``weight``."""
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.lerp_(state[key], weight)
