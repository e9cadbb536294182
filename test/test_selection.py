"""Model selection: the rule on validation images, and depth_sr_select that applies it."""

import filecmp
import os
import shutil

from depth_sr_ros.cli.choose import main
from depth_sr_ros.selection import VALIDATION_NAMES, VALIDATION_PROTOCOLS, verdict
from helpers import FIXTURES, REPO
import torch


def _report(model, worse=(), by=0.15, bicubic=(1.0, 2.0)):
    """Return a validation report: (MAE, RMSE) of the model, ``by`` more under ``worse``."""
    report = {}
    for label, _, _ in VALIDATION_PROTOCOLS:
        mae, rmse = (v + by * (label in worse) for v in model)
        report[label] = {'model': {'mae': mae, 'rmse': rmse},
                         'bicubic': {'mae': bicubic[0], 'rmse': bicubic[1]}}
    return report


def test_a_file_ships_only_below_bicubic_and_no_worse_than_the_shipped_one_everywhere():
    good, better = _report((0.8, 1.8)), _report((0.7, 1.7))
    assert verdict(good) == (True, ['below bicubic under every protocol'])
    # One protocol at bicubic or above is enough to refuse.
    ships, reasons = verdict(_report((0.8, 1.8), worse=('camera noise',), by=0.2))
    assert not ships and 'camera noise MAE 1.0000 >= bicubic 1.0000' in reasons[0]
    assert verdict(better, good)[0]
    ships, reasons = verdict(_report((0.7, 1.7), worse=('antialiased',)), good)
    assert not ships and reasons[0].startswith('worse than the shipped file: antialiased MAE')
    # A shipped file above bicubic somewhere gives way to one that is below it everywhere.
    broken = _report((0.5, 1.5), worse=('papers',), by=1.0)
    ships, reasons = verdict(good, broken)
    assert ships and reasons[0].startswith('the shipped file is not below bicubic (papers')


def _validation_data(root):
    for kind in ('depth', 'rgb'):
        os.makedirs(root / kind)
        for name in VALIDATION_NAMES:
            shutil.copy(os.path.join(FIXTURES, kind, 'cones.png'), root / kind / f'{name}.png')
    return str(root)


def test_depth_sr_select_installs_a_passing_file_and_refuses_a_failing_one(
        tmp_path, model_path, capsys):
    data = _validation_data(tmp_path / 'data')
    shipped = tmp_path / 'pag_net_x4.pt'
    shutil.copy(os.path.join(REPO, 'models', 'pag_net_x4.pt'), shipped)
    # An untrained network returns bicubic upsampling exactly: not below it, not shipped.
    assert main(['--model', model_path, '--shipped', str(shipped), '--data', data,
                 '--install']) == 1
    out = capsys.readouterr().out
    assert 'does not ship: not below bicubic' in out and '| camera noise |' in out
    assert filecmp.cmp(shipped, os.path.join(REPO, 'models', 'pag_net_x4.pt'), shallow=False)
    # The shipped file itself is no worse than itself: it passes and is installed.
    candidate = tmp_path / 'candidate.pt'
    shutil.copy(shipped, candidate)
    assert main(['--model', str(candidate), '--shipped', str(shipped), '--data', data,
                 '--install']) == 0
    assert f'installed {candidate} as {shipped}' in capsys.readouterr().out
    assert os.stat(shipped).st_mode & 0o777 == os.stat(candidate).st_mode & 0o777  # not 0600
    assert sorted(os.listdir(tmp_path)) == ['candidate.pt', 'data', 'pag_net_x4.pt']
    # A missing validation folder is one line and exit 2.
    assert main(['--model', str(candidate), '--data', str(tmp_path / 'none')]) == 2
    assert capsys.readouterr().err.startswith('depth_sr_select: ')


def test_depth_sr_select_refuses_a_file_that_learnt_from_a_validation_pair(tmp_path, capsys):
    # depth_sr_train --val-names 01 trains on 13 and 27: judged on them, it would pass on
    # what it knows by heart.
    data = _validation_data(tmp_path / 'data')
    payload = torch.load(os.path.join(REPO, 'models', 'pag_net_x4.pt'), weights_only=True)
    payload['training'] = {'init_training': payload['training'], 'train_pairs': ['01', '13']}
    candidate = tmp_path / 'leaked.pt'
    torch.save(payload, candidate)
    assert main(['--model', str(candidate), '--data', data]) == 2
    assert capsys.readouterr().err == (f'depth_sr_select: {candidate} was trained on 13: it can '
                                       'only be judged on pairs it did not learn from\n')
