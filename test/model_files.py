"""Model files for the tests: a good one, and every kind of bad one."""

from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import PREPROCESSING
from helpers import untrained
import torch

TRAINING = {'data': 'unit test', 'steps': 0, 'metrics': {'val_mae': 1.5}}


def save_model_file(path, arch='pag_net', scale=2, **kwargs):
    model = untrained(arch, scale=scale)
    save_checkpoint(path, model, arch, {'scale': scale}, PREPROCESSING, TRAINING, **kwargs)
    return model


def rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)


def state_of(arch, scale):
    return build_model(arch, scale=scale).state_dict()


def bad_model_file(tmp_path, kind):
    """Return the path of a model file that is wrong in the way ``kind`` names."""
    path = tmp_path / f'{kind}.pt'
    if kind == 'missing':
        return path
    save_model_file(path)
    if kind == 'corrupt':
        path.write_bytes(b'\x00garbage' * 100)
    elif kind == 'truncated':
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == 'not_a_dict':
        torch.save([1, 2, 3], path)
    elif kind == 'missing_field':
        rewrite(path, preprocessing=None)
    elif kind == 'version':
        rewrite(path, format_version=99)
    elif kind == 'unknown_arch':
        rewrite(path, arch='unet')
    elif kind == 'bad_kwargs':
        rewrite(path, arch_kwargs={'scale': 3})
    elif kind == 'other_arch':
        rewrite(path, arch='ahmf', arch_kwargs={'scale': 4})
    elif kind == 'other_scale':
        rewrite(path, state_dict=state_of('pag_net', 4))
    elif kind == 'preprocessing_text':  # a field of the wrong type: no AttributeError deep down
        rewrite(path, preprocessing='x')
    elif kind == 'arch_list':
        rewrite(path, arch=['pag_net'])
    elif kind == 'state_list':
        rewrite(path, state_dict=[1, 2])
    elif kind == 'nan':
        state = state_of('pag_net', 2)
        state['tail.bias'][:] = float('nan')
        rewrite(path, state_dict=state)
    return path
