"""Training: runs, resumes exactly where it stopped, and refuses to save after a NaN loss."""

import csv
import dataclasses
import os
import shutil

from depth_sr_ros.checkpoint import load_checkpoint, read_checkpoint
from depth_sr_ros.cli import train as train_module
from depth_sr_ros.cli.train import main, train, TrainConfig
from depth_sr_ros.data.middlebury import load_pair
from depth_sr_ros.metrics import near_edges
from depth_sr_ros.networks import build_model
from helpers import FIXTURES
import numpy as np
import pytest
import torch


def _config(out, steps, **kwargs):
    kwargs.setdefault('scale', 2)
    kwargs.setdefault('val_names', '')
    return TrainConfig(arch='pag_net', data=FIXTURES, out=str(out), steps=steps,
                       batch_size=2, crop=32, save_every=2, threads=1,
                       device='cpu', **kwargs)


def _weights(out):
    return torch.load(os.path.join(out, 'state.pt'), weights_only=False)['model']


def test_a_run_writes_state_log_and_a_loadable_model(tmp_path):
    facts = train(_config(tmp_path, 4))
    assert facts['steps'] == 4
    model, info = load_checkpoint(tmp_path / 'model.pt')
    assert info['arch'] == 'pag_net' and info['training']['steps'] == 4
    assert info['training']['config']['loss'] == 'l1+l2'  # PAG-Net's paper loss
    with open(tmp_path / 'log.csv') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['step']) for r in rows] == [2, 4]
    assert (tmp_path / 'loss.png').is_file()


def test_the_log_and_the_file_carry_both_validation_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, 'validate', lambda *args: {'mae': 1.25, 'rmse': 2.5})
    facts = train(_config(tmp_path, 2))
    with open(tmp_path / 'log.csv') as f:
        row, = csv.DictReader(f)
    assert (float(row['val_mae']), float(row['val_rmse'])) == (1.25, 2.5)
    assert (facts['val_mae'], facts['val_rmse']) == (1.25, 2.5)
    assert load_checkpoint(tmp_path / 'model.pt')[1]['training']['val_rmse'] == 2.5


def test_a_log_begun_without_the_rmse_column_keeps_its_columns_on_resume(tmp_path):
    train(_config(tmp_path, 2, lr_halve_at=1.0))
    with open(tmp_path / 'log.csv') as f:  # rewrite it as a log from before val_rmse
        rows = list(csv.DictReader(f))
    old = ['step', 'loss', 'lr', 'val_mae', 'elapsed_s']
    with open(tmp_path / 'log.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, old, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    train(_config(tmp_path, 4, lr_halve_at=1.0))
    with open(tmp_path / 'log.csv', newline='') as f:
        lines = list(csv.reader(f))
    assert lines[0] == old and [len(line) for line in lines] == [5, 5, 5]
    assert [line[0] for line in lines[1:]] == ['2', '4']


def test_resuming_gives_the_same_weights_as_one_run(tmp_path):
    # The learning rate schedule depends on --steps; keep it flat so that both runs see the
    # same rates and only the interruption differs.
    train(_config(tmp_path / 'straight', 6, lr_halve_at=1.0))
    train(_config(tmp_path / 'resumed', 4, lr_halve_at=1.0))
    train(_config(tmp_path / 'resumed', 6, lr_halve_at=1.0))
    straight, resumed = _weights(tmp_path / 'straight'), _weights(tmp_path / 'resumed')
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    # With the halving inside the run: stopped after every step (a time budget), the same
    # rates at the same steps.
    train(_config(tmp_path / 'halved', 6, lr_halve_at=0.5))
    for _ in range(6):
        train(_config(tmp_path / 'halved_stopped', 6, lr_halve_at=0.5, time_budget=1e-6))
    straight, resumed = (_weights(tmp_path / run) for run in ('halved', 'halved_stopped'))
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    rates = [float(row.split(',')[2]) for row in
             (tmp_path / 'halved_stopped' / 'log.csv').read_text().splitlines()[1:]]
    assert rates[0] == 2 * rates[-1]  # halved after step 3 of 6


def test_a_run_stopped_every_step_logs_what_one_run_logs(tmp_path):
    # A time budget used up after each step: the log's losses average the same steps as one
    # run's (the losses since the last row travel in state.pt).
    def logged(folder):
        with open(folder / 'log.csv', newline='') as f:
            return [(r['step'], r['loss']) for r in csv.DictReader(f)]
    train(_config(tmp_path / 'straight', 6, lr_halve_at=1.0))
    out = tmp_path / 'stopped'
    for _ in range(6):
        train(_config(out, 6, lr_halve_at=1.0, time_budget=1e-6))
    assert torch.load(out / 'state.pt', weights_only=False)['step'] == 6
    assert logged(out) == logged(tmp_path / 'straight')
    # A row written just before a stop that came before its state.pt was saved is dropped
    # on resume, and written once by the resumed run.
    with open(out / 'log.csv', 'a', newline='') as f:
        csv.writer(f).writerow(['8', '0.5', '0.0001', '1.0', '2.0', '1.0'])
    train(_config(out, 8, lr_halve_at=1.0))
    assert [step for step, _ in logged(out)] == ['2', '4', '6', '8']
    assert logged(out)[-1][1] != '0.5'
    # A last line cut off while it was written goes too, and the next row starts a line.
    with open(out / 'log.csv', 'a', newline='') as f:
        f.write('1')
    train(_config(out, 10, lr_halve_at=1.0))
    assert [step for step, _ in logged(out)] == ['2', '4', '6', '8', '10']


def test_nan_loss_stops_without_overwriting_the_last_state(tmp_path, monkeypatch, capsys):
    train(_config(tmp_path, 2))
    before = _weights(tmp_path)
    monkeypatch.setattr(train_module, 'loss_fn',
                        lambda name, p, t, *weight: (p - t).abs().mean() * float('nan'))
    args = ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(tmp_path),
            '--steps', '4', '--batch-size', '2', '--crop', '32', '--val-names', '',
            '--device', 'cpu']
    assert main(args) == 1
    assert 'loss is nan at step 2' in capsys.readouterr().err
    after = _weights(tmp_path)
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_non_finite_gradients_stop_without_saving_them(tmp_path, monkeypatch, capsys):
    # A finite loss whose gradient is not (sqrt at 0): the step would write NaN weights into
    # state.pt, and every resume would load them.
    train(_config(tmp_path, 2))
    before = _weights(tmp_path)
    monkeypatch.setattr(train_module, 'loss_fn', lambda name, p, t, *weight: (
        (p - t).abs().mean() + torch.sqrt(0 * p.sum())))
    args = ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(tmp_path),
            '--steps', '3', '--batch-size', '2', '--crop', '32', '--val-names', '',
            '--device', 'cpu']  # the last step: its weights went straight into state.pt
    assert main(args) == 1
    assert 'gradients are not finite at step 2' in capsys.readouterr().err
    after = _weights(tmp_path)
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_a_resume_keeps_its_pairs_and_needs_no_init_file(tmp_path, capsys):
    # Validating on a pair the run trained on before would pass it off as unseen: the model
    # file records the last segment's pairs only.
    init = tmp_path / 'init.pt'
    train(_config(tmp_path / 'first', 1))
    os.replace(tmp_path / 'first' / 'model.pt', init)
    base = ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--batch-size', '2',
            '--crop', '32', '--save-every', '2', '--device', 'cpu', '--threads', '1',
            '--out', str(tmp_path / 'run'), '--init', str(init)]
    assert main(base + ['--steps', '2', '--val-names', '']) == 0
    capsys.readouterr()
    other = tmp_path / 'other'  # the same pair in another folder: other data all the same
    shutil.copytree(FIXTURES, other)
    assert main(base + ['--steps', '4', '--val-names', '', '--data', str(other)]) == 1
    err = capsys.readouterr().err
    assert f"--data '{other}': the run in" in err and f"began with '{FIXTURES}'" in err
    with pytest.raises(ValueError, match="--val-names '13,27': the run in .* began with ''"):
        train_module.check_resumed_pairs(
            dataclasses.asdict(TrainConfig(data='d', val_names='')),
            TrainConfig(data='d', val_names='13,27'))
    # The same pairs spelled otherwise are the same.
    train_module.check_resumed_pairs(
        dataclasses.asdict(TrainConfig(data=FIXTURES, val_names='13,27')),
        TrainConfig(data=FIXTURES + os.sep, val_names='27, 13'))
    os.remove(init)  # a resume reads state.pt, not the file the run began from
    assert main(base + ['--steps', '20', '--val-names', '']) == 0
    out = capsys.readouterr().out  # 0.8 of 2 steps: none halved; of 20, the last 4
    assert ('--steps 20, --lr-halve-at 0.8: the learning rate halves after step 16 (does not '
            'halve as last saved)') in out


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['--out', str(tmp_path)])
    assert '--data DIR is required' in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # before any work, as the options' errors
        main(['--data', str(tmp_path / 'none'), '--out', str(tmp_path / 'run')])
    assert stopped.value.code == 2
    assert f"--data '{tmp_path / 'none'}' is not a folder" in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_two_processes_with_torchrun_and_gloo(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', str(29500 + os.getpid() % 1000), '-m', 'depth_sr_ros.cli.train',
         '--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(tmp_path),
         '--steps', '4', '--batch-size', '4', '--crop', '32', '--save-every', '2',
         '--val-names', '', '--device', 'cpu', '--threads', '1'],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    _, info = load_checkpoint(tmp_path / 'model.pt')
    assert info['training']['processes'] == 2 and info['training']['steps'] == 4
    with open(tmp_path / 'log.csv') as f:
        assert [r['step'] for r in csv.DictReader(f)] == ['2', '4']  # one writer: rank 0
    assert (tmp_path / 'loss.png').is_file()


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_its_last_state(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    args = ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(tmp_path),
            '--steps', '1000', '--batch-size', '2', '--crop', '32', '--save-every', '3',
            '--val-names', '', '--device', 'cpu', '--threads', '1']
    process = subprocess.Popen([sys.executable, '-m', 'depth_sr_ros.cli.train', *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 120
    while time.monotonic() < end and not (tmp_path / 'state.pt').exists():
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(tmp_path / 'state.pt', weights_only=False)['step']  # not corrupt
    assert saved > 0 and saved % 3 == 0
    result = subprocess.run([sys.executable, '-m', 'depth_sr_ros.cli.train',
                             *args[:args.index('--steps') + 1], str(saved + 3),
                             *args[args.index('--steps') + 2:]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'resumed from {tmp_path}/state.pt at step {saved}' in result.stdout
    assert torch.load(tmp_path / 'state.pt', weights_only=False)['step'] == saved + 3


@pytest.mark.slow
def test_the_gpu_training_script_runs_every_model_and_sizes_the_last_segment(tmp_path):
    import subprocess
    import sys
    from helpers import REPO
    env = dict(os.environ, DEVICE='cpu',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PYTHONPATH=REPO,
               TRAIN_ARGS='--crop 32 --batch-size 2 --val-names= --save-every 1 --threads 1 '
                          '--workers 0 --storage-dtype float32')
    script = os.path.join(REPO, 'scripts', 'gpu_train.sh')
    runs = tmp_path / 'runs'
    for segment in ([], ['final']):
        result = subprocess.run(['bash', script, FIXTURES, str(runs), '2', *segment], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    names = ('ahmf_x4_clean', 'ahmf_x8_clean', 'ahmf_x16_clean', 'ahmf_x4_mix', 'ahmf_x8_mix',
             'ahmf_x16_mix', 'pag_net_x2', 'pag_net_x4', 'pag_net_x8', 'pag_net_x16')
    for name in names:
        _, info = load_checkpoint(runs / name / 'model.pt')
        config = info['training']['config']
        assert info['arch'] == name.split('_x')[0] and config['scale'] == int(
            name.split('_x')[1].split('_')[0])
        # The last segment ends the run: its steps are those done plus the measured rate
        # times the budget, not the open-ended first segment's.
        assert config['steps'] < 1000000 and info['training']['steps'] <= config['steps']
    mix = load_checkpoint(runs / 'ahmf_x8_mix' / 'model.pt')[1]['training']
    assert mix['synthetic_fraction'] == 0.25 and mix['degradation'].count(',') == 3
    assert mix['config']['init'].endswith('models/ahmf_x8.pt')
    grown = load_checkpoint(runs / 'pag_net_x16' / 'model.pt')[1]['training']['config']
    assert grown['init'].endswith('models/pag_net_x8.pt')


def test_bfloat16_is_picked_only_where_the_hardware_runs_it(monkeypatch):
    assert train_module.training_precision('float32', torch.device('cpu')) == 'float32'
    for native, expected in ((True, 'bfloat16'), (False, 'float32')):
        monkeypatch.setattr(train_module, 'native_bfloat16', lambda device, n=native: n)
        assert train_module.training_precision('auto', torch.device('cpu')) == expected


def test_bfloat16_training_learns_like_float32(tmp_path):
    # Same seed, same batches: after 6 steps the two precisions differ, but only slightly.
    runs = {p: train(_config(tmp_path / p, 6, precision=p, lr=1e-3)) for p in
            ('float32', 'bfloat16')}
    assert runs['bfloat16']['precision'] == 'bfloat16'
    f32, bf16 = _weights(tmp_path / 'float32'), _weights(tmp_path / 'bfloat16')
    moved = max((f32[k] - bf16[k]).abs().max().item() for k in f32)
    assert 0 < moved < 1e-2


def test_init_starts_from_a_model_file_and_refuses_another_network(tmp_path):
    train(_config(tmp_path / 'first', 2))
    model, _ = load_checkpoint(tmp_path / 'first' / 'model.pt')
    train(_config(tmp_path / 'tuned', 0, init=str(tmp_path / 'first' / 'model.pt')))
    tuned = _weights(tmp_path / 'tuned')
    for key, value in model.state_dict().items():
        torch.testing.assert_close(tuned[key], value, rtol=0, atol=0)
    # The file keeps its starting file's record: where the weights came from, on which pairs.
    first = read_checkpoint(tmp_path / 'first' / 'model.pt')['training']
    init = read_checkpoint(tmp_path / 'tuned' / 'model.pt')['training']['init_training']
    assert set(init) == set(first) and init['config'] == first['config']
    assert (init['steps'], init['train_pairs']) == (first['steps'], first['train_pairs'])
    # Resumed without --init, the run still names the file it began from.
    train(_config(tmp_path / 'tuned', 2))
    init = read_checkpoint(tmp_path / 'tuned' / 'model.pt')['training']['init_training']
    assert init['config'] == first['config']
    # A run folder of another network or scale: one line, not load_state_dict's traceback.
    with pytest.raises(ValueError, match=r'state.pt is a run of pag_net 2x, not pag_net 4x: '
                                         'give another --out'):
        train(_config(tmp_path / 'first', 4, scale=4))
    with pytest.raises(ValueError, match='holds pag_net'):
        train(TrainConfig(arch='ahmf', scale=4, data=FIXTURES, out=str(tmp_path / 'x'),
                          steps=1, batch_size=2, crop=32, val_names='', device='cpu',
                          init=str(tmp_path / 'first' / 'model.pt')))


def test_pag_net_grows_from_a_smaller_scale_keeping_each_stage_at_its_guidance_level(tmp_path):
    train(_config(tmp_path / 'four', 2, scale=4))  # two stages, one guidance downsampler
    small = load_checkpoint(tmp_path / 'four' / 'model.pt')[0].state_dict()
    train(_config(tmp_path / 'sixteen', 0, scale=16,
                  init=str(tmp_path / 'four' / 'model.pt')))
    grown = _weights(tmp_path / 'sixteen')
    # stage (and downsampler) of the 16x network <- the 4x one's: the full-resolution stage
    # stays last, the 4x network's first stage fills the coarse ones
    source = {'stages.3.': 'stages.1.', 'stages.2.': 'stages.0.', 'stages.1.': 'stages.0.',
              'stages.0.': 'stages.0.', 'guide_down.2.': 'guide_down.0.',
              'guide_down.1.': 'guide_down.0.', 'guide_down.0.': 'guide_down.0.'}
    for key, value in grown.items():
        prefix = next((p for p in source if key.startswith(p)), '')
        origin = source[prefix] + key[len(prefix):] if prefix else key
        torch.testing.assert_close(value, small[origin], rtol=0, atol=0, msg=key)
    with pytest.raises(ValueError, match='cannot grow a 8x PAG-Net into 4x'):
        build_model('pag_net', scale=4).grow_from(build_model('pag_net', scale=8))


def test_the_sensor_mix_is_an_option_that_is_off_unless_asked_for():
    parse = train_module.parse_args
    assert parse(['--data', FIXTURES]).sensor == 0
    assert parse(['--data', FIXTURES, '--sensor', '0.75']).sensor == 0.75
    assert parse(['--data', FIXTURES]).metric == 0
    assert parse(['--data', FIXTURES, '--metric', '0.5', '--val-noise', 'metric']).metric == 0.5


def test_a_resume_that_changes_the_data_settings_says_which():
    saved = dataclasses.asdict(TrainConfig(data='d', steps=100, lr=1e-4))
    del saved['sensor']  # a run from before the option: not compared
    same = TrainConfig(data='d', steps=800, lr=5e-5, time_budget=60, threads=1, sensor=0.5)
    assert train_module.changed_data_settings(saved, same) == ''
    other = TrainConfig(data='d', crop=128, downsampling='bicubic,area')
    assert train_module.changed_data_settings(saved, other) == (
        "crop 256 -> 128, downsampling 'bicubic' -> 'bicubic,area'")


def test_the_moving_average_warms_up_then_keeps_its_decay():
    assert train_module.ema_decay(0.999, 0) == pytest.approx(0.1)
    assert train_module.ema_decay(0.999, 90) == pytest.approx(0.91)
    assert train_module.ema_decay(0.999, 10 ** 6) == 0.999


def test_with_ema_the_model_file_holds_the_average_and_training_is_unchanged(tmp_path):
    train(_config(tmp_path / 'plain', 1, storage_dtype='float32'))
    train(_config(tmp_path / 'ema', 1, storage_dtype='float32', ema=0.9))
    state = torch.load(tmp_path / 'ema' / 'state.pt', weights_only=False)
    torch.manual_seed(0)  # the run's initial weights
    start = build_model('pag_net', scale=2).state_dict()
    trained = _weights(tmp_path / 'plain')
    written = load_checkpoint(tmp_path / 'ema' / 'model.pt')[0].state_dict()
    assert state['ema_updates'] == 1
    for key, weight in trained.items():
        torch.testing.assert_close(state['model'][key], weight, rtol=0, atol=0)
        # one update at the warmed-up decay of 0.1 from the initial weights
        torch.testing.assert_close(written[key], 0.1 * start[key] + 0.9 * weight)
    assert load_checkpoint(tmp_path / 'plain' / 'model.pt')[1]['training']['config']['ema'] == 0


def test_a_resumed_average_is_the_average_of_one_run(tmp_path):
    train(_config(tmp_path / 'straight', 6, lr_halve_at=1.0, ema=0.9))
    train(_config(tmp_path / 'resumed', 4, lr_halve_at=1.0, ema=0.9))
    train(_config(tmp_path / 'resumed', 6, lr_halve_at=1.0, ema=0.9))
    straight, resumed = (torch.load(tmp_path / run / 'state.pt', weights_only=False)
                         for run in ('straight', 'resumed'))
    assert resumed['ema_updates'] == 6
    for key in straight['ema']:
        torch.testing.assert_close(resumed['ema'][key], straight['ema'][key], rtol=0, atol=0)


def test_switching_the_average_on_or_off_on_resume_is_said_and_a_bad_decay_refused(tmp_path,
                                                                                   capsys):
    train(_config(tmp_path, 2))
    train(_config(tmp_path, 4, ema=0.9))
    assert 'moving average of the weights starts at step 2' in capsys.readouterr().out
    train(_config(tmp_path, 6))
    assert 'without --ema it is dropped' in capsys.readouterr().out
    with pytest.raises(ValueError, match=r'argument --ema: a finite number within \[0, 1\)'):
        train(_config(tmp_path / 'bad', 2, ema=1.0))
    with pytest.raises(ValueError, match='--rig-offset is a share of the rig samples'):
        train(_config(tmp_path / 'bad', 2, rig_offset=0.5))
    assert not (tmp_path / 'bad').exists()


def test_the_losses():
    prediction, target = torch.tensor([0.0, 0.0]), torch.tensor([0.1, 0.5])
    for name, expected in (('l1', 0.3), ('l2', 0.13), ('l1+l2', 0.43)):
        assert train_module.loss_fn(name, prediction, target).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        train_module.loss_fn('l3', prediction, target)
    # Target pixels without ground truth (NaN) are left out, of every loss.
    holed = torch.tensor([0.1, float('nan'), 0.5])
    for name, expected in (('l1', 0.3), ('l2', 0.13), ('l1+l2', 0.43)):
        assert train_module.loss_fn(name, torch.zeros(3), holed).item() == pytest.approx(
            expected)
    grid = torch.zeros(1, 1, 4, 4)
    assert train_module.loss_fn('l1+edges', grid, torch.full((1, 1, 4, 4), float('nan'))) == 0
    for name in train_module.LOSSES:  # each one the command accepts is one loss_fn knows
        assert torch.isfinite(train_module.loss_fn(name, prediction.view(1, 1, 1, 2),
                                                   target.view(1, 1, 1, 2)))


@pytest.mark.parametrize('option, value, message', [
    # model.pt is written last: a bad name used to end a whole run in a KeyError.
    ('--storage-dtype', 'half',
     "argument --storage-dtype: one of 'float32', 'float16', not 'half'"),
    ('--precision', 'float16', "argument --precision: one of 'auto', 'float32', 'bfloat16', not "
                               "'float16'"),
    ('--val-noise', 'poisson', "argument --val-noise: one of '', 'gaussian', 'sensor', 'rig', "),
    ('--loss', 'l1+edge', "argument --loss: one of '', 'l1', 'l1+l2', 'l2', 'l1+edges', "
                          "'l1+surfaces', not "),
    ('--downsampling', 'bicubic,aera', 'argument --downsampling: comma-separated names of '
                                       "'antialiased', 'area', 'bicubic', 'nearest', 'point', "
                                       "not 'bicubic,aera'"),
    ('--rig-offset', '0.5', '--rig-offset is a share of the rig samples: give --rig too'),
    ('--rig-registered', '0.5', '--rig-registered is a share of the rig samples: give --rig too'),
    ('--scale', '3', '--scale: pag_net takes 2, 4, 8, 16, not 3'),
])
def test_a_bad_setting_is_refused_by_the_parser_before_the_run_folder_is_made(
        tmp_path, capsys, option, value, message):
    out = tmp_path / 'run'
    argv = ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(out),
            '--steps', '1', '--batch-size', '1', '--crop', '32', '--val-names', '',
            '--device', 'cpu', option, value]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    # train() refuses the same config with the same words, for callers without the parser.
    config, name = _config(out, 1), option[2:].replace('-', '_')
    with pytest.raises(ValueError) as refused:
        train(dataclasses.replace(config, **{name: type(getattr(config, name))(value)}))
    assert message in str(refused.value)
    assert not out.exists()


@pytest.mark.parametrize('option, value, message', [
    # An unknown validation name used to train a whole run with a NaN validation.
    ('--val-names', '13', "validation pairs 13: not in '"),
    ('--init', 'missing.pt', "model file 'missing.pt': not found"),
])
def test_what_needs_the_files_is_refused_before_the_run_folder_is_made(
        tmp_path, capsys, option, value, message):
    out = tmp_path / 'run'
    assert main(['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(out),
                 '--steps', '1', '--batch-size', '1', '--crop', '32', '--val-names', '',
                 '--device', 'cpu', option, value]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_edge_loss_weighs_the_band_of_the_floating_metric_five_times():
    # A step between columns 9 and 10; the band is metrics.between_surfaces' (2 pixels each side).
    target = torch.zeros(1, 1, 8, 20)
    target[..., 10:] = 1.0
    band = train_module.edge_band(target)[0, 0]
    assert band[:, 8:12].all() and band[:, 7].all() and band[:, 12].all()
    assert not band[:, :7].any() and not band[:, 13:].any()
    # Slopes below 5 % of the range from pixel to pixel are not edges.
    ramp = torch.linspace(0, 1, 40).expand(1, 1, 8, 40).contiguous()
    assert not train_module.edge_band(ramp).any()
    # The range is the image's (targets are normalised by it, to 0..1), not the crop's; a
    # hole (no ground truth) is no edge: the band of a crop is the band that
    # metrics.between_surfaces finds in the whole image there.
    image = np.full((40, 60), 0.5, np.float32)
    image[:, 30:] = 0.52  # 2 % of the image's range: no edge
    image[10:12, 10:12] = np.nan  # a hole
    image[20:, 45:] = 1.0  # an edge
    image[0, 0] = 0.0  # the image's range is 0..1
    crop = image[4:36, 4:56]
    band = train_module.edge_band(torch.from_numpy(crop.copy())[None, None])[0, 0].numpy()
    valid = np.isfinite(image)
    span = float(image[valid].max() - image[valid].min())
    whole = near_edges(image, span)[4:36, 4:56]
    np.testing.assert_array_equal(band > 0, whole)
    assert whole[:, 40:].any() and not whole[:, :30].any()
    near, far = target.clone(), target.clone()
    near[..., 10] = 0.5   # off by 0.5 on the edge
    far[..., 0] = 0.5     # off by 0.5 far from it
    pixels = target.numel()
    assert train_module.loss_fn('l1+edges', far, target).item() == pytest.approx(0.5 * 8 / pixels)
    assert train_module.loss_fn('l1+edges', near, target).item() == pytest.approx(
        (1 + train_module.EDGE_LOSS_WEIGHT) * 0.5 * 8 / pixels)


def test_the_surface_loss_pulls_a_floating_edge_pixel_onto_either_surface():
    # A step between columns 9 and 10 from 1 to 2; the band is 2 pixels each side of it.
    target = torch.ones(1, 1, 8, 20)
    target[..., 10:] = 2.0
    pixels = target.numel()
    l1 = train_module.loss_fn('l1', target, target)
    assert train_module.loss_fn('l1+surfaces', target, target).item() == l1.item() == 0
    floating, wrong, away = target.clone(), target.clone(), target.clone()
    floating[..., 10] = 1.4  # between the surfaces, 0.4 from the near one
    wrong[..., 10] = 1.0     # on the other surface: L1's to judge, nothing floats
    away[..., 0] = 1.4       # as far off, far from the edge
    assert train_module.loss_fn('l1+surfaces', floating, target).item() == pytest.approx(
        (0.6 + 0.4) * 8 / pixels)
    assert train_module.loss_fn('l1+surfaces', floating, target, 0.25).item() == pytest.approx(
        (0.6 + 0.25 * 0.4) * 8 / pixels)
    assert train_module.loss_fn('l1+surfaces', wrong, target).item() == pytest.approx(
        1.0 * 8 / pixels)
    assert train_module.loss_fn('l1+surfaces', away, target).item() == pytest.approx(
        0.4 * 8 / pixels)
    # Pixels whose target is itself between the surfaces (a ramp) do not count, as in
    # metrics.between_surfaces; nor do holes, which give no gradient but L1's.
    target[..., 10] = 1.5
    distance, counts = train_module.surface_distance(floating, target)
    assert not counts[..., 10].any() and counts[..., 9].all()
    # Nor do pixels whose window sees one flat surface only (two beside a step), as there.
    target[..., 10] = 2.0
    distance, counts = train_module.surface_distance(floating, target)
    assert counts[..., 8:12].all() and not counts[..., 7].any() and not counts[..., 12].any()
    assert torch.equal(counts, torch.from_numpy(np.isin(np.arange(20), [8, 9, 10, 11]))
                       .expand_as(counts))
    holed = target.clone()
    holed[..., :3, :] = float('nan')
    prediction = floating.clone().requires_grad_()
    train_module.loss_fn('l1+surfaces', prediction, holed).backward()
    assert torch.isfinite(prediction.grad).all() and (prediction.grad[..., :3, :] == 0).all()


def test_validation_can_add_the_noise_a_run_learns():
    cones = [load_pair(FIXTURES, 'cones')]
    model = build_model('pag_net', scale=2)
    clean = train_module.validate(model, cones, 2, 'cpu')
    noisy = train_module.validate(model, cones, 2, 'cpu', noise='sensor')
    assert noisy['mae'] > clean['mae'] and noisy['rmse'] > clean['rmse']
    assert train_module.validate(model, cones, 2, 'cpu', noise='sensor') == noisy  # seeded
