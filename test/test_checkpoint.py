"""Model files: round trip, weights_only loading and every load error."""

import os

from depth_sr_ros.checkpoint import (
    CheckpointError, FORMAT_VERSION, load_checkpoint, older_torch, read_checkpoint,
    save_checkpoint)
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import PREPROCESSING
from model_files import bad_model_file, rewrite, save_model_file, state_of, TRAINING
import pytest
import torch


def _outputs(model, scale=2):
    torch.manual_seed(1)
    depth, guide = torch.rand(1, 1, 5, 6), torch.rand(1, 3, 5 * scale, 6 * scale)
    with torch.no_grad():
        return model.eval()(depth, guide)


def test_round_trip_restores_the_network_and_its_facts(tmp_path):
    path = tmp_path / 'model.pt'
    original = save_model_file(path)
    model, info = load_checkpoint(path)
    torch.testing.assert_close(_outputs(model), _outputs(original), rtol=0, atol=0)
    assert info['arch'] == 'pag_net'
    assert info['arch_kwargs'] == {'scale': 2}
    assert model.scale == 2 and 'scale' not in info['preprocessing']  # one record of it
    assert info['preprocessing']['depth_units'] == 'm'
    assert info['preprocessing']['rgb_order'] == 'rgb'
    assert info['training'] == TRAINING
    assert not model.training
    assert os.listdir(tmp_path) == ['model.pt']  # no temporary file left behind


def test_the_file_loads_with_weights_only(tmp_path):
    save_model_file(tmp_path / 'model.pt')
    payload = torch.load(tmp_path / 'model.pt', weights_only=True)
    assert payload['format_version'] == FORMAT_VERSION


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    original = save_model_file(tmp_path / 'full.pt')
    save_model_file(tmp_path / 'half.pt', storage_dtype='float16')
    ratio = os.path.getsize(tmp_path / 'half.pt') / os.path.getsize(tmp_path / 'full.pt')
    assert 0.45 < ratio < 0.6
    model, _ = load_checkpoint(tmp_path / 'half.pt')
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(_outputs(model), _outputs(original), rtol=0, atol=2e-3)


def test_non_plain_training_facts_are_refused_atsave_model_file(tmp_path):
    model = build_model('pag_net', scale=2)
    with pytest.raises(TypeError, match='not a plain type'):
        save_checkpoint(tmp_path / 'm.pt', model, 'pag_net', {'scale': 2}, PREPROCESSING,
                        {'when': object()})


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
    ('preprocessing_text', 'preprocessing is a str, not a dict'),
    ('state_list', 'state_dict is a list, not a dict'),
    ('arch_list', "unknown architecture ['pag_net']"),
])
def test_each_load_error_is_one_line_naming_file_and_problem(tmp_path, kind, problem):
    path = bad_model_file(tmp_path, kind)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert '\n' not in message
    assert message.startswith(f"model file '{path}': ")
    assert problem in message


def test_shape_mismatch_is_named(tmp_path):
    path = tmp_path / 'm.pt'
    save_model_file(path, arch='ahmf', scale=4)
    rewrite(path, state_dict=state_of('ahmf', 8), arch_kwargs={'scale': 4})
    with pytest.raises(CheckpointError, match=r'shape mismatch guide_down\.body\.3\.weight'):
        load_checkpoint(path)


def test_read_checkpoint_does_not_need_to_build_the_network(tmp_path):
    save_model_file(tmp_path / 'm.pt')
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


def test_an_older_torch_that_cannot_read_a_model_file_is_named(tmp_path, monkeypatch):
    # Debian 12's python3-torch 1.13.1 (as rosdep installs it) refuses the shipped files with
    # 'Unsupported operand 71' (a float); the message named only a corrupt file.
    path = tmp_path / 'm.pt'
    save_model_file(path)

    def old_load(*args, **kwargs):
        raise RuntimeError('Weights only load failed. Unpickler error: Unsupported operand 71')
    monkeypatch.setattr(torch, 'load', old_load)
    monkeypatch.setattr(torch, '__version__', '1.13.1')
    with pytest.raises(CheckpointError, match=r'no model data in it \(torch 1.13.1 is installed; '
                       r'the model files are made and tested with torch 2.13.0: pip install'):
        read_checkpoint(path)
    monkeypatch.setattr(torch, '__version__', '2.13.0+cpu')
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path)
    assert str(raised.value).endswith('no model data in it')  # a damaged file, as before
    assert [older_torch(v) for v in ('1.8.1', '2.12.1+cu121', '2.13.0', '2.15.0', '10.0')] == [
        True, True, False, False, False]


def test_a_whole_pickled_network_gets_no_advice_to_run_its_code_either(tmp_path):
    # torch.save(model): torch's first line here says 'Weights only load failed' (with ANSI
    # colours and the advice to load with weights_only=False), not 'weights_only'.
    path = tmp_path / 'whole.pt'
    torch.save(torch.nn.Conv2d(1, 1, 1), path)
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path)
    message = str(raised.value)
    assert message.endswith('no model data in it') and 'can still be loaded' not in message
