"""The zoo script: every model evaluated, its blocks in the cards and README rewritten."""

import glob
import os
import re
import shutil

from depth_sr_ros.selection import VALIDATION_NAMES, VALIDATION_PROTOCOLS
from depth_sr_ros.tools import zoo
from depth_sr_ros.tools.zoo import (
    BENCHMARKS, file_digest, main, replace_block, summary_row, TEST_IMAGES)
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
MODELS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'models')


def _data_tree(root):
    """middlebury30 (test and validation names) and middlebury_full (one image): the fixture."""
    for folder, names in (('middlebury30', TEST_IMAGES + VALIDATION_NAMES),
                          ('middlebury_full', ('cones',))):
        for kind in ('depth', 'rgb'):
            os.makedirs(root / folder / kind)
            for name in names:
                shutil.copy(os.path.join(FIXTURES, kind, 'cones.png'),
                            root / folder / kind / f'{name}.png')


def test_replace_block_keeps_the_rest_and_refuses_a_missing_block():
    text = 'a\n<!-- zoo: x -->\nold\n<!-- /zoo: x -->\nb\n'
    assert replace_block(text, 'x', 'new\nlines') == (
        'a\n<!-- zoo: x -->\nnew\nlines\n<!-- /zoo: x -->\nb\n')
    with pytest.raises(KeyError):
        replace_block(text, 'y', 'new')


def test_the_zoo_rewrites_every_block_from_its_own_evaluation(tmp_path, model_path, capsys):
    _data_tree(tmp_path / 'data')
    os.makedirs(tmp_path / 'models')
    shutil.copy(model_path, tmp_path / 'models' / 'tiny_x4.pt')
    card, readme = tmp_path / 'models' / 'README.md', tmp_path / 'README.md'
    accuracy = tmp_path / 'accuracy.md'
    card.write_text('# cards\n<!-- zoo: summary -->\n-\n<!-- /zoo: summary -->\n'
                    '## tiny_x4.pt\n<!-- zoo: tiny_x4 -->\n-\n<!-- /zoo: tiny_x4 -->\nend\n')
    readme.write_text('<!-- zoo: summary -->\n-\n<!-- /zoo: summary -->\n')
    accuracy.write_text('# per image\n<!-- zoo: full_size -->\n-\n<!-- /zoo: full_size -->\n'
                        '<!-- zoo: tiny_x4 -->\n-\n<!-- /zoo: tiny_x4 -->\n')
    mode = card.stat().st_mode & 0o777
    assert main(['--data', str(tmp_path / 'data'), '--models', str(tmp_path / 'models'),
                 '--card', str(card), '--readme', str(readme), '--accuracy', str(accuracy),
                 '--write']) == 0
    assert card.stat().st_mode & 0o777 == mode  # rewritten in place, not made private
    text = card.read_text()
    assert text.startswith('# cards\n') and text.endswith('end\n')
    block = text.split('<!-- zoo: tiny_x4 -->')[1]
    assert f"SHA-256 begins `{file_digest(tmp_path / 'models' / 'tiny_x4.pt')}`" in block
    # The validation table that model selection judges, with its depth_sr_select command.
    assert '`depth_sr_select --model models/tiny_x4.pt --data ../shared/data/middlebury30`' in (
        block)
    both = ('antialiased', 'sigma 5', 'camera noise', 'simulated rig', 'rig 1-2.5 px off',
            'rig off, aligned')  # a row in the validation table and in the test table
    for label in ('papers',) + both:
        assert f'| {label} |' in block
    # The test table: one row per held-out benchmark, averages of the three methods.
    for row in ("six images, papers' protocol", 'full-size Art, Books, Moebius') + both:
        assert block.count(f'| {row} |') == (2 if row in both else 1)
    # The per-image tables of each of the eight benchmarks, with the command giving each.
    per_image = accuracy.read_text().split('<!-- zoo: tiny_x4 -->')[1]
    for option in ('--names 02,06,14,18,21,24`', '--protocol antialiased`', '--noise`',
                   '--sensor`', '--rig`', '--rig-offset`', '--rig-aligned`',
                   'middlebury_full`'):
        assert option in per_image
    # MAE, RMSE and floating edge pixels for each of the eight.
    assert per_image.count('| pag_net 4x |') == 24 and per_image.count('| bicubic |') == 24
    summary = readme.read_text().split('<!-- /zoo: summary -->')[0]
    assert '| `tiny_x4.pt` |' in summary and '| `tiny_x4.pt` |' in text
    full = accuracy.read_text().split('<!-- zoo: full_size -->')[1]
    assert '| bicubic (ours) | 4x |' in full and "AHMF (paper's Table I) | 4x" in full
    assert '| **`tiny_x4.pt`** | 4x |' in full
    assert 'depth_sr_zoo: evaluating tiny_x4.pt' in capsys.readouterr().err


def test_the_summary_measures_the_node_on_an_offset_rig_against_unaligned_bicubic():
    def report(model_rmse, bicubic_rmse):
        errors = {'model': {'mae': 1.0, 'rmse': model_rmse, 'between': 0.2},
                  'bicubic': {'mae': 2.0, 'rmse': bicubic_rmse, 'between': 0.4},
                  'guided filter': {'mae': 2.0, 'rmse': 3.0, 'between': 0.4}}
        return {'average': errors, 'images': [errors]}
    reports = {key: report(8.0, 10.0) for key, *_ in BENCHMARKS}
    reports['six_offset'] = report(15.0, 20.0)  # alignment off: both far off
    reports['six_aligned'] = report(9.0, 12.0)  # the node's output, 9.0: 55 % below 20.0
    reports['validation'] = {}
    cells = summary_row('m.pt', 'model', reports).strip('| ').split(' | ')
    # Five protocols at 20 % below bicubic, then the node against unaligned bicubic.
    assert cells[2:8] == ['20 %'] * 5 + ['55 %']


def test_a_missing_block_is_said_before_any_evaluation(tmp_path, capsys):
    os.makedirs(tmp_path / 'models')
    (tmp_path / 'models' / 'never_loaded_x4.pt').write_bytes(b'not evaluated')
    (tmp_path / 'card.md').write_text('<!-- zoo: summary -->\n<!-- /zoo: summary -->\n')
    (tmp_path / 'README.md').write_text('')
    assert main(['--data', str(tmp_path), '--models', str(tmp_path / 'models'),
                 '--card', str(tmp_path / 'card.md'), '--readme', str(tmp_path / 'README.md'),
                 '--write']) == 1
    err = capsys.readouterr().err
    assert 'card.md: no <!-- zoo: never_loaded_x4 --> ... <!-- /zoo: never_loaded_x4 --> ' \
        'block' in err
    assert 'evaluating' not in err


def test_missing_benchmark_data_is_one_line_and_exit_2_before_any_evaluation(tmp_path, capsys):
    _data_tree(tmp_path / 'data')
    os.remove(tmp_path / 'data' / 'middlebury30' / 'rgb' / '14.png')
    assert main(['--data', str(tmp_path / 'data'), '--models', MODELS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"depth_sr_zoo: {tmp_path / 'data' / 'middlebury30'}: no 14"]
    assert main(['--data', str(tmp_path / 'nowhere'), '--models', MODELS]) == 2
    assert 'nowhere/middlebury30: no depth/ and rgb/ pairs' in capsys.readouterr().err


def _models(root, model_path, *broken):
    """Make a models folder: tiny_x4.pt and pag_x2.pt (model_path), and ``broken`` files."""
    os.makedirs(root)
    for name in ('tiny_x4.pt', 'pag_x2.pt'):
        shutil.copy(model_path, root / name)
    for name in broken:
        (root / name).write_bytes(b'not a model')
    return str(root)


def test_an_unknown_only_name_is_refused_naming_the_files_there(tmp_path, model_path, capsys):
    models = _models(tmp_path / 'models', model_path)
    with pytest.raises(SystemExit) as stopped:
        main(['--data', str(tmp_path), '--models', models, '--only', 'tiny_x4.pt,typo.pt'])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f': error: --only: no typo.pt in {models} (there: pag_x2.pt, '
                         'tiny_x4.pt)'), last


def test_an_only_name_without_pt_is_the_file(tmp_path, model_path, capsys):
    _data_tree(tmp_path / 'data')
    os.remove(tmp_path / 'data' / 'middlebury30' / 'rgb' / '14.png')
    # Past the choice of files: refused for the data, the next check.
    assert main(['--data', str(tmp_path / 'data'), '--only', 'tiny_x4',
                 '--models', _models(tmp_path / 'models', model_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"depth_sr_zoo: {tmp_path / 'data' / 'middlebury30'}: no 14"]


def test_a_model_file_that_does_not_load_is_one_line_and_exit_2_before_any_evaluation(
        tmp_path, model_path, monkeypatch, capsys):
    _data_tree(tmp_path / 'data')
    models = _models(tmp_path / 'models', model_path, 'zz_x4.pt')

    def evaluated(*args):
        raise AssertionError('evaluated before every model file was read')
    monkeypatch.setattr(zoo, 'evaluate_model', evaluated)
    assert main(['--data', str(tmp_path / 'data'), '--models', models]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"depth_sr_zoo: model file '{models}/zz_x4.pt': not a readable checkpoint"), err


def _pairs(cell):
    """Return (MAE, RMSE) of a table cell 'MAE / RMSE'."""
    mae, rmse = cell.split(' / ')
    return float(mae), float(rmse)


# Where a shipped file is not below bicubic in a card's tables: each is an open failure, named
# here so that the test fails on any new one and on one that is fixed (then remove it).
KNOWN_LOSSES = {
    # Since the corrected rig simulation (commit dc18fd3), on the six held-out images' rigs
    # 1-2.5 depth pixels off with the node's alignment off: 7.644 against bicubic's 7.640
    # (+0.05 %, with the rig simulation of commit 818a0a3; 7.660 against 7.643 before it).
    # With the alignment (the node's default) it is below.
    ('pag_net_x2.pt', 'held-out', 'rig 1-2.5 px off', 'RMSE'):
        'sharpens the misregistered edges that bicubic blurs',
}


def test_every_shipped_file_beats_bicubic_on_every_set_and_protocol_its_card_reports():
    # The cards' accuracy blocks are the zoo's output for the committed files (the digest says
    # which file): validation (8 protocols) and held-out sets (8 benchmarks), model against
    # bicubic in MAE and RMSE.
    with open(os.path.join(MODELS, 'README.md')) as f:
        cards = f.read()
    losses = set()
    paths = sorted(glob.glob(os.path.join(MODELS, '*.pt')))
    assert len(paths) >= 10
    for path in paths:
        name = os.path.basename(path)
        block = cards.split(f'<!-- zoo: {name.removesuffix(".pt")} -->')[1].split('<!-- /zoo')[0]
        assert f'SHA-256 begins `{file_digest(path)}`' in block, (
            f"{name}: the card's tables are not of this file; run depth_sr_zoo --write")
        rows = [line.strip('|').split(' | ') for line in block.splitlines()
                if re.match(r'\| [a-z].* \| \d', line)]
        assert len(rows) == len(VALIDATION_PROTOCOLS) + 8, (name, rows)
        for cells in rows:
            held_out = len(cells) == 5  # input, bicubic, guided filter, model, edge pixels
            bicubic, model = _pairs(cells[1]), _pairs(cells[3 if held_out else 2])
            for metric, b, m in zip(('MAE', 'RMSE'), bicubic, model):
                if not m < b:
                    losses.add((name, 'held-out' if held_out else 'validation',
                                cells[0].strip(), metric))
    assert losses == set(KNOWN_LOSSES), sorted(losses)
