"""The evaluation protocol: degradations, and a report with the baselines as rows."""

import json
import shutil

import cv2
from depth_sr_ros.baselines import BicubicUpsampler, GuidedFilterUpsampler
from depth_sr_ros.cli.evaluate import main
from depth_sr_ros.data.degradations import antialiased_bicubic_downsample, crop_to_multiple
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair
from depth_sr_ros.data.synthetic import synthetic_pair
from depth_sr_ros.evaluation import degrade, evaluate, markdown, noise_rng, prepare
from depth_sr_ros.metrics import between_surfaces, mae, rmse, shifted_rmse
from helpers import FIXTURES
import numpy as np
import pytest


def test_degradations():
    depth = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.testing.assert_array_equal(degrade(depth, 4, 'nyu'), [[0, 4], [32, 36]])
    assert degrade(depth, 4, 'middlebury').shape == (2, 2)
    # Antialiased: every pixel of the block and its neighbours; bicubic samples the centre.
    np.testing.assert_array_equal(degrade(depth, 4, 'antialiased'),
                                  antialiased_bicubic_downsample(depth, 4))
    assert not np.allclose(degrade(depth, 4, 'antialiased'), degrade(depth, 4, 'middlebury'))
    noisy = degrade(np.full((400, 400), 100, np.float32), 4, 'middlebury',
                    np.random.default_rng(0))
    assert abs(noisy.std() - 5.0) < 0.2
    with pytest.raises(ValueError, match='protocol'):
        degrade(depth, 4, 'kitti')


def test_the_sensor_protocol_leaves_holes_that_every_method_skips():
    cones = load_pair(FIXTURES, 'cones')
    truth = crop_to_multiple(cones['depth'], 4)
    clean = degrade(truth, 4, 'middlebury')
    noisy = degrade(truth, 4, 'middlebury', noise_rng('cones'), noise='sensor')  # as evaluate()
    lost = np.isnan(noisy)
    assert lost.any() and lost.mean() < 0.2
    # noise in the image's own units: some of the range, not all of it
    spread = np.abs(noisy - clean)[~lost]
    assert 0 < np.median(spread) < 0.05 * (clean.max() - clean.min())
    with pytest.raises(ValueError, match='noise'):
        degrade(truth, 4, 'middlebury', np.random.default_rng(1), noise='poisson')
    methods = {'bicubic': BicubicUpsampler(4), 'guided filter': GuidedFilterUpsampler(4)}
    kept = {}
    report = evaluate(methods, [cones], 4, noise='sensor', keep=kept)
    holes = np.repeat(np.repeat(lost, 4, axis=0), 4, axis=1)
    for name in methods:
        assert np.isnan(kept['results'][name][holes]).all()
    assert report['images'][0]['bicubic']['mae'] > evaluate(methods, [cones], 4)[
        'images'][0]['bicubic']['mae']


def test_the_offset_rigs_are_the_rig_protocols_rigs_moved_and_aligned_back_with_the_colour():
    depth = synthetic_pair(np.random.default_rng(11), 192, 256)['depth']
    grey = 40 + 180 * (depth - depth.min()) / (depth.max() - depth.min())
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)  # colour edges = depth edges
    with pytest.raises(ValueError, match='colour'):
        degrade(depth, 4, 'middlebury', noise_rng('a'), 'rig_aligned')
    bicubic = {'bicubic': BicubicUpsampler(4)}
    rows = {noise: [evaluate(bicubic, [{'name': name, 'depth': depth, 'rgb': rgb}], 4,
                             noise=noise)['images'][0] for name in 'abcdef']
            for noise in ('rig', 'rig_offset', 'rig_aligned')}
    errors = {noise: [row['bicubic']['rmse'] for row in rows[noise]] for noise in rows}
    # Each image's rig is drawn from its name: the offset moves it off, the alignment back.
    assert all(o > r for o, r in zip(errors['rig_offset'], errors['rig']))
    assert all(a <= o for a, o in zip(errors['rig_aligned'], errors['rig_offset']))
    assert np.mean(errors['rig_aligned']) < 0.8 * np.mean(errors['rig_offset']), errors
    # Each aligned row says whether the alignment moved its rig: exactly where the error changed.
    assert [row['moved'] for row in rows['rig_aligned']] == [
        a != o for a, o in zip(errors['rig_aligned'], errors['rig_offset'])]
    assert 'moved' not in rows['rig_offset'][0]


def test_the_metric_protocol_measures_metric_depth_as_a_camera_gives_it():
    # The pairs hold disparity (large = near); a depth camera gives millimetres (large = far),
    # which the node normalises the other way round.
    pair = load_pair(FIXTURES, 'cones')
    truth, _, low = prepare(pair, 4, 'middlebury', noise_rng('cones'), 'metric')
    disparity = crop_to_multiple(pair['depth'], 4)
    expected = disparity_to_metres(disparity) * 1000
    np.testing.assert_array_equal(truth, expected)
    np.testing.assert_array_equal(low, degrade(expected, 4, 'middlebury'))
    valid = disparity > 0
    assert np.corrcoef(truth[valid], disparity[valid])[0, 1] < -0.9  # far is large
    report = evaluate({'bicubic': BicubicUpsampler(4)}, [pair], 4, noise='metric')
    assert 1 < report['average']['bicubic']['mae'] < 1000  # millimetres


def test_report_on_the_fixture_has_every_method_and_the_average():
    methods = {'bicubic': BicubicUpsampler(4), 'guided filter': GuidedFilterUpsampler(4)}
    kept = {}
    cones = load_pair(FIXTURES, 'cones')
    flipped = {'name': 'flipped', 'depth': np.ascontiguousarray(cones['depth'][:, ::-1]),
               'rgb': np.ascontiguousarray(cones['rgb'][:, ::-1])}
    report = evaluate(methods, [cones, flipped], 4, keep=kept)
    row = report['images'][0]
    assert row['name'] == 'cones'
    # the figure shows the very outputs the table measured
    assert kept['name'] == 'cones' and set(kept['results']) == set(methods)
    assert mae(kept['results']['bicubic'], kept['truth']) == row['bicubic']['mae']
    assert report['average']['bicubic']['mae'] == pytest.approx(
        (row['bicubic']['mae'] + report['images'][1]['bicubic']['mae']) / 2)
    assert 0 < row['guided filter']['mae'] < row['bicubic']['mae'] < row['bicubic']['rmse']
    table = markdown(report, methods)
    assert table.splitlines()[0] == '| method | cones | flipped | average |'
    assert table.splitlines()[2].startswith('| bicubic | ')


def test_every_method_is_scored_on_the_same_pixels_so_giving_up_on_hard_ones_does_not_pay():
    cones = load_pair(FIXTURES, 'cones')
    bicubic = BicubicUpsampler(4)

    def gives_up(low, rgb):  # bicubic, without an output where its error is largest
        out = bicubic(low, rgb)
        truth = crop_to_multiple(cones['depth'], 4)
        error = np.abs(out - truth)
        out[error > np.quantile(error, 0.95)] = np.nan
        return out
    alone = evaluate({'bicubic': bicubic}, [cones], 4)
    assert alone['unscored'] == 0 and alone['truth_pixels'] > 0
    report = evaluate({'bicubic': bicubic, 'gives up': gives_up}, [cones], 4)
    row = report['images'][0]
    assert row['unscored'] == report['unscored'] > 0.04 * report['truth_pixels']
    # Both are scored without the pixels it left out: the same errors, lower than bicubic's
    # on every pixel.
    assert row['gives up']['mae'] == row['bicubic']['mae'] < alone['images'][0]['bicubic']['mae']
    assert row['gives up']['rmse'] == row['bicubic']['rmse']


def test_a_misaligned_output_is_best_at_the_shift_that_undoes_it():
    truth = crop_to_multiple(load_pair(FIXTURES, 'cones')['depth'], 4).astype(np.float32)
    up_left = np.empty_like(truth)  # the truth one pixel up and to the left
    up_left[:-1, :-1] = truth[1:, 1:]
    up_left[-1], up_left[:, -1] = truth[-1], truth[:, -1]
    at = dict(zip((-1, 0, 1), shifted_rmse(up_left, truth, (-1, 0, 1))))
    assert at[1] < 1e-5 < at[0] < at[-1]
    assert shifted_rmse(truth, truth, (0,)) == [0.0]
    assert at[0] != pytest.approx(rmse(up_left, truth))  # the border is left out
    # A hole moves with each shift; the pixels it covers at any shift count at none.
    flat = np.full((32, 32), 50.0, np.float32)
    holed = flat.copy()
    holed[16, 16] = np.nan
    holed[15, 15] = holed[17, 17] = 150.0  # where the hole lands at shifts -1 and +1
    assert shifted_rmse(holed, flat, (0,)) == [pytest.approx(np.sqrt(2e4 / (30 * 30 - 1)))]
    assert shifted_rmse(holed, flat, (-1, 0, 1))[1] == 0.0


def test_the_report_can_measure_each_method_at_several_shifts():
    methods = {'bicubic': BicubicUpsampler(4)}
    cones = load_pair(FIXTURES, 'cones')
    report = evaluate(methods, [cones], 4, shifts=(-0.25, 0, 0.25))
    values = report['images'][0]['bicubic']['shifted_rmse']
    assert report['average']['bicubic']['shifted_rmse'] == values
    assert values[1] < min(values[0], values[2])  # bicubic is centred
    assert 'shifted_rmse' not in evaluate(methods, [cones], 4)['images'][0]['bicubic']


def test_command_line_writes_json(tmp_path, capsys):
    from depth_sr_ros.paths import default_model_path
    out = tmp_path / 'report.json'
    figure = tmp_path / 'figure.png'
    assert main(['--model', default_model_path(), '--data', FIXTURES, '--device', 'cpu',
                 '--json', str(out), '--figure', str(figure)]) == 0
    assert figure.is_file()
    report = json.loads(out.read_text())
    assert set(report['average']) == {'bicubic', 'guided filter', 'ahmf 4x'}
    assert 'MAE (middlebury protocol, 4x' in capsys.readouterr().out
    assert main(['--model', default_model_path(), '--data', FIXTURES, '--device', 'cpu',
                 '--sensor', '--figure', '']) == 0
    assert 'MAE (middlebury protocol, 4x, sensor' in capsys.readouterr().out
    with pytest.raises(SystemExit):  # one kind of noise at a time
        main(['--model', default_model_path(), '--data', FIXTURES, '--noise', '--sensor'])
    assert main(['--model', default_model_path(), '--data', FIXTURES, '--device', 'cpu',
                 '--rig-aligned', '--figure', '']) == 0
    assert 'The alignment moved the depth of ' in capsys.readouterr().out
    assert main(['--model', default_model_path(), '--data', FIXTURES, '--device', 'cpu',
                 '--shifts=-0.5,0,0.5', '--figure', '']) == 0
    assert '| method | -0.5 | +0 | +0.5 |' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(['--model', default_model_path(), '--data', FIXTURES, '--shifts', 'left'])
    assert main(['--model', str(tmp_path / 'none.pt'), '--data', FIXTURES]) == 2
    assert "--model '" in capsys.readouterr().err
    assert main(['--model', default_model_path(), '--data', str(tmp_path / 'none')]) == 2
    assert 'is not a folder' in capsys.readouterr().err


def test_data_it_cannot_measure_is_one_line_and_exit_1(tmp_path, capsys):
    from depth_sr_ros.paths import default_model_path
    for sub in ('depth', 'rgb'):
        (tmp_path / sub).mkdir()
        shutil.copy(f'{FIXTURES}/{sub}/cones.png', tmp_path / sub)
    cv2.imwrite(str(tmp_path / 'depth' / 'blank.png'), np.zeros((40, 48), np.uint8))
    cv2.imwrite(str(tmp_path / 'rgb' / 'blank.png'), np.zeros((40, 48, 3), np.uint8))
    base = ['--model', default_model_path(), '--data', str(tmp_path), '--device', 'cpu',
            '--figure', '']
    # Each used to end in a traceback, or (no ground truth) in NaN rows and an average of the
    # other images alone, exit 0.
    for extra, said in ((['--names', 'nosuch'], "no depth file for 'nosuch'"),
                        ([], "pair 'blank': its ground truth has no valid pixel"),
                        (['--names', 'cones', '--shifts', '0,200'],
                         'shifts up to 200 px leave no pixel')):
        assert main(base + extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
    with pytest.raises(SystemExit) as stop:
        main(base + ['--device', 'bogus'])
    assert stop.value.code == 2
    assert "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not 'bogus'" in (
        capsys.readouterr().err)


def test_floating_edge_pixels_count_outputs_between_two_surfaces_and_not_slopes():
    columns = np.arange(64, dtype=np.float32)
    slope = np.tile(100 + 0.5 * columns, (48, 1))  # 1 % of the range per pixel: no edge
    step = slope.copy()
    step[:, 32:] += 60  # a depth edge between columns 31 and 32
    assert between_surfaces(step, step) == 0.0  # the truth itself never floats
    assert np.isnan(between_surfaces(slope, slope))  # a slope has no edge
    # Counted: columns 30-33, whose window holds both sides. A blur over five pixels puts all
    # four between the sides, one over three pixels the two beside the edge.
    assert between_surfaces(cv2.blur(step, (5, 1)), step) == 1.0
    assert between_surfaces(cv2.blur(step, (3, 1)), step) == 0.5
    nearest = step.copy()  # a sharp edge one pixel off: on a surface, never between
    nearest[:, 31] = step[:, 32]
    assert between_surfaces(nearest, step) == 0.0


def test_floating_edge_pixels_count_only_where_the_window_sees_both_flat_surfaces():
    # A step between flat surfaces, between columns 9 and 10. Columns 7 and 12 lie in the
    # band (two pixels from a pixel of the step) but their windows see one surface only:
    # counted, they could never float, and put a ceiling of two thirds on the share.
    step = np.full((20, 20), 50.0, np.float32)
    step[:, 10:] = 150.0
    output = step.copy()
    output[:, 8:12] = 100.0  # the four pixels beside the step halfway between
    assert between_surfaces(output, step) == 1.0
    output[:, 7] = output[:, 12] = 100.0  # beyond them: neither counted nor a surface known
    assert between_surfaces(output, step) == 1.0
    output[:, 8] = 50.0
    assert between_surfaces(output, step) == 0.75
