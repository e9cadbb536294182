"""Blending two model files' weights, and depth_sr_blend's choice on validation images."""

from depth_sr_ros.checkpoint import (
    blend_checkpoints, CheckpointError, load_checkpoint, save_checkpoint)
from depth_sr_ros.cli.blend import main
from depth_sr_ros.data.middlebury import load_pair
from depth_sr_ros.evaluation import evaluate
from depth_sr_ros.inference import Acceleration, Predictor
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import PREPROCESSING
from helpers import FIXTURES, untrained
import pytest
import torch


def _save(path, model, arch='pag_net', scale=2, steps=0):
    save_checkpoint(path, model, arch, {'scale': scale}, PREPROCESSING,
                    {'data': 'unit test', 'steps': steps}, storage_dtype='float32')
    return path


@pytest.fixture
def two_files(tmp_path):
    """Return a fresh PAG-Net 2x (exactly bicubic) and one whose zero-started convs are random."""
    start = _save(tmp_path / 'start.pt', untrained('pag_net', seed=1, scale=2), steps=7)
    torch.manual_seed(1)  # the same draw as untrained(seed=1), before it redraws the tails
    fresh = _save(tmp_path / 'fresh.pt', build_model('pag_net', scale=2))
    return fresh, start


def test_a_blend_is_the_weighted_mean_of_the_two_files(two_files):
    a, b = two_files
    wa, wb = (load_checkpoint(p)[0].state_dict() for p in (a, b))
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    for weight in (0.0, 0.25, 1.0):
        model, info = blend_checkpoints(a, b, weight)
        for key, tensor in model.state_dict().items():
            torch.testing.assert_close(tensor, (1 - weight) * wa[key] + weight * wb[key])
        # the record is the blend's: both files' own records inside it, nothing of one on top
        assert info['training'] == {'blend': {
            'model': str(a), 'toward': str(b), 'weight': weight,
            'model_training': {'data': 'unit test', 'steps': 0},
            'toward_training': {'data': 'unit test', 'steps': 7}}}
    with pytest.raises(ValueError, match='within'):
        blend_checkpoints(a, b, 1.5)


def test_only_the_same_network_blends(two_files, tmp_path):
    a, _ = two_files
    other = _save(tmp_path / 'x4.pt', untrained('pag_net', scale=4), scale=4)
    with pytest.raises(CheckpointError, match='x4.pt.*only the same network'):
        blend_checkpoints(a, other, 0.5)


def test_the_command_writes_the_blend_that_is_best_on_the_named_images(two_files, tmp_path,
                                                                       capsys):
    a, b = two_files
    cones = [load_pair(FIXTURES, 'cones')]
    weights = (1.0, 0.0, 0.5)  # the best neither first nor last

    def rmse(weight):
        predictor = Predictor(blend_checkpoints(a, b, weight)[0], device='cpu',
                              acceleration=Acceleration('float32'))
        return evaluate({'m': predictor}, cones, 2, noise='sensor')['average']['m']['rmse']

    errors = {w: rmse(w) for w in weights}
    assert len(set(errors.values())) == 3  # the choice matters
    best = min(errors, key=errors.get)
    out = tmp_path / 'blend.pt'
    assert main(['--model', str(a), '--toward', str(b), '--weights', '1,0,0.5',
                 '--data', FIXTURES, '--names', 'cones', '--sensor', '--storage-dtype',
                 'float32', '--out', str(out)]) == 0
    assert f'{1 - best:g} x {a} + {best:g} x {b}' in capsys.readouterr().out
    written, info = load_checkpoint(out)
    assert info['training']['blend']['weight'] == best
    assert info['training']['blend']['chosen_on']['rmse'] == pytest.approx(errors[best])
    expected = blend_checkpoints(a, b, best)[0].state_dict()
    for key, tensor in written.state_dict().items():
        torch.testing.assert_close(tensor, expected[key])


def test_the_command_says_what_is_wrong(two_files, tmp_path, capsys):
    a, b = two_files
    out = str(tmp_path / 'out.pt')
    with pytest.raises(SystemExit):
        main(['--model', str(a), '--toward', str(b), '--weights', '0,0.5', '--out', out])
    assert 'need --data and --names' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--model', str(a), '--toward', str(b), '--weights', '2', '--out', out])
    assert "within [0, 1], not '2'" in capsys.readouterr().err
    assert main(['--model', str(a), '--toward', str(tmp_path / 'none.pt'), '--weights', '0.5',
                 '--out', out]) == 1
    assert "none.pt': not found" in capsys.readouterr().err


def test_the_command_refuses_to_choose_on_test_images_or_on_what_a_file_learnt(
        two_files, tmp_path, capsys):
    a, b = two_files
    out = tmp_path / 'out.pt'
    for names in ('02,13', 'Moebius'):  # either naming of the six test scenes
        assert main(['--model', str(a), '--toward', str(b), '--weights', '0,0.5', '--data',
                     FIXTURES, '--names', names, '--out', str(out)]) == 2
        assert 'test images, for reporting only' in capsys.readouterr().err
    # A file fine-tuned from one that learnt from 'cones', then blended: the lineage says so.
    learnt = tmp_path / 'learnt.pt'
    save_checkpoint(learnt, untrained('pag_net', seed=2, scale=2), 'pag_net', {'scale': 2},
                    PREPROCESSING, {'train_pairs': ['01'], 'init_training': {
                        'blend': {'model_training': {'train_pairs': ['cones']},
                                  'toward_training': {}}}}, storage_dtype='float32')
    assert main(['--model', str(a), '--toward', str(learnt), '--weights', '0,0.5', '--data',
                 FIXTURES, '--names', 'cones', '--out', str(out)]) == 2
    assert f'{learnt} was trained on cones' in capsys.readouterr().err
    # A name is no path: './cones' would load cones past both checks.
    assert main(['--model', str(a), '--toward', str(learnt), '--weights', '0,0.5', '--data',
                 FIXTURES, '--names', './cones', '--out', str(out)]) == 1
    assert "'./cones' is no pair name" in capsys.readouterr().err
    assert not out.exists()
