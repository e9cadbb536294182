"""Model files: round trip, weights_only loading and every load error."""

import os

from conftest import untrained
from depth_sr_ros.checkpoint import (
    CheckpointError, FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint)
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import PREPROCESSING
import pytest
import torch

TRAINING = {'data': 'unit test', 'steps': 0, 'metrics': {'val_mae': 1.5}}


def _save(path, arch='pag_net', scale=2, **kwargs):
    model = untrained(arch, scale=scale)
    save_checkpoint(path, model, arch, {'scale': scale}, PREPROCESSING, TRAINING, **kwargs)
    return model


def _outputs(model, scale=2):
    torch.manual_seed(1)
    depth, guide = torch.rand(1, 1, 5, 6), torch.rand(1, 3, 5 * scale, 6 * scale)
    with torch.no_grad():
        return model.eval()(depth, guide)


def test_round_trip_restores_the_network_and_its_facts(tmp_path):
    path = tmp_path / 'model.pt'
    original = _save(path)
    model, info = load_checkpoint(path)
    torch.testing.assert_close(_outputs(model), _outputs(original), rtol=0, atol=0)
    assert info['arch'] == 'pag_net'
    assert info['arch_kwargs'] == {'scale': 2}
    assert info['preprocessing']['scale'] == 2
    assert info['preprocessing']['depth_units'] == 'm'
    assert info['preprocessing']['rgb_order'] == 'rgb'
    assert info['training'] == TRAINING
    assert not model.training
    assert os.listdir(tmp_path) == ['model.pt']  # no temporary file left behind


def test_the_file_loads_with_weights_only(tmp_path):
    _save(tmp_path / 'model.pt')
    payload = torch.load(tmp_path / 'model.pt', weights_only=True)
    assert payload['format_version'] == FORMAT_VERSION


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    original = _save(tmp_path / 'full.pt')
    _save(tmp_path / 'half.pt', storage_dtype='float16')
    ratio = os.path.getsize(tmp_path / 'half.pt') / os.path.getsize(tmp_path / 'full.pt')
    assert 0.45 < ratio < 0.6
    model, _ = load_checkpoint(tmp_path / 'half.pt')
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(_outputs(model), _outputs(original), rtol=0, atol=2e-3)


def test_non_plain_training_facts_are_refused_at_save(tmp_path):
    model = build_model('pag_net', scale=2)
    with pytest.raises(TypeError, match='not a plain type'):
        save_checkpoint(tmp_path / 'm.pt', model, 'pag_net', {'scale': 2}, PREPROCESSING,
                        {'when': object()})


def _rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)


def _state_of(arch, scale):
    return build_model(arch, scale=scale).state_dict()


def _bad_file(tmp_path, kind):
    path = tmp_path / f'{kind}.pt'
    if kind == 'missing':
        return path
    _save(path)
    if kind == 'corrupt':
        path.write_bytes(b'\x00garbage' * 100)
    elif kind == 'truncated':
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == 'not_a_dict':
        torch.save([1, 2, 3], path)
    elif kind == 'missing_field':
        _rewrite(path, preprocessing=None)
    elif kind == 'version':
        _rewrite(path, format_version=99)
    elif kind == 'unknown_arch':
        _rewrite(path, arch='unet')
    elif kind == 'bad_kwargs':
        _rewrite(path, arch_kwargs={'scale': 3})
    elif kind == 'other_arch':
        _rewrite(path, arch='ahmf', arch_kwargs={'scale': 4})
    elif kind == 'other_scale':
        _rewrite(path, state_dict=_state_of('pag_net', 4))
    elif kind == 'nan':
        state = _state_of('pag_net', 2)
        state['tail.bias'][:] = float('nan')
        _rewrite(path, state_dict=state)
    return path


@pytest.mark.parametrize('kind,problem', [
    ('missing', 'not found'),
    ('corrupt', 'not a readable checkpoint'),
    ('truncated', 'not a readable checkpoint'),
    ('not_a_dict', 'holds a list, not a checkpoint dict'),
    ('missing_field', 'missing field(s) preprocessing'),
    ('version', 'format version 99 is not supported'),
    ('unknown_arch', "unknown architecture 'unet'"),
    ('bad_kwargs', 'cannot build pag_net'),
    ('other_arch', 'weights do not match ahmf'),
    ('other_scale', 'unexpected keys guide_down.0.0.bias'),
    ('nan', 'non-finite weights in tail.bias'),
])
def test_each_load_error_is_one_line_naming_file_and_problem(tmp_path, kind, problem):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith(f"model file '{path}': ")
    assert problem in message


def test_shape_mismatch_is_named(tmp_path):
    path = tmp_path / 'm.pt'
    _save(path, arch='ahmf', scale=4)
    _rewrite(path, state_dict=_state_of('ahmf', 8), arch_kwargs={'scale': 4})
    with pytest.raises(CheckpointError, match=r'shape mismatch guide_down\.body\.3\.weight'):
        load_checkpoint(path)


def test_read_checkpoint_does_not_need_to_build_the_network(tmp_path):
    _save(tmp_path / 'm.pt')
    assert read_checkpoint(tmp_path / 'm.pt')['arch'] == 'pag_net'


def test_a_pickle_that_is_not_a_model_gets_no_advice_to_run_its_code(tmp_path):
    import pickle
    path = tmp_path / 'other.pt'
    with open(path, 'wb') as f:
        pickle.dump({'a': type}, f)
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path)
    assert 'weights_only' not in str(raised.value)
    assert 'not a readable checkpoint' in str(raised.value)
