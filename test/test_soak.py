"""The soak check: a short run in the tests, the verdict logic on its own."""

import json
import os
import subprocess
import sys

from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import PREPROCESSING
from depth_sr_ros.tools import soak
from depth_sr_ros.tools.soak import memory_floors, resident_mib, verdict
import pytest
import torch

TINY = {'scale': 4, 'channels': 8, 'growth': 4, 'rdb_layers': 1, 'num_blocks': 1}


def _report(**changes):
    report = {'seconds': 30.0, 'rss_floor_start_mib': 400.0, 'rss_floor_end_mib': 420.0,
              'last_output_s': 29.5}
    report.update(changes)
    return report


def test_verdict_flags_memory_growth_and_stalls():
    assert verdict(_report(), 50, 10) == []
    assert 'grew by 80 MiB' in verdict(_report(rss_floor_end_mib=480.0), 50, 10)[0]
    assert 'no output in the last 10 s' in verdict(_report(last_output_s=12.0), 50, 10)[0]
    assert 'no output' in verdict(_report(last_output_s=None), 50, 10)[0]
    assert resident_mib(os.getpid()) > 10


def test_memory_floors_ignore_per_frame_peaks_but_see_a_leak():
    # What a 300 s run of the shipped AHMF 4x looked like: a flat floor with frame peaks.
    steady = [(t, 590.0 + (140.0 if t % 7 == 0 else 0.0)) for t in range(10, 300)]
    assert memory_floors(steady, 10, 300) == (590.0, 590.0)
    leaking = [(t, rss + 0.5 * t) for t, rss in steady]
    start, end = memory_floors(leaking, 10, 300)
    assert end - start > 100


@pytest.mark.parametrize('seconds', ['5', '10'])
def test_a_warmup_as_long_as_the_run_is_refused(seconds, monkeypatch, capsys):
    # Nothing after the warm-up would be measured, so no leak could fail the run.
    def watched(*args, **kwargs):
        raise AssertionError('the player and the node were started')
    monkeypatch.setattr(soak, 'watch_player_and_node', watched)
    with pytest.raises(SystemExit) as stopped:
        soak.main(['--seconds', seconds])  # the default warm-up, 10 s
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f': error: --warmup 10 s must be shorter than --seconds {seconds} s')


def test_the_start_up_before_the_first_output_is_not_memory_growth(monkeypatch, tmp_path):
    # The warm-up counted from the processes' launch: the torch import and the model load
    # (65 -> 480 MiB with a tiny model and --warmup 0) read as a leak.
    class Watched:
        watched, diagnostics, outputs, started, interrupted = 40.0, [], [(39.5, None)], 0.0, False

        def destroy_node(self):
            pass
    rss = {'now': 65.0}
    monkeypatch.setattr(soak, 'resident_mib', lambda pid: rss['now'])

    node = type('Process', (), {'pid': 1})()

    def watched(*args, **kwargs):
        assert kwargs['from_first_output']
        on_tick = args[6]
        for t in range(0, 20):  # start-up: the seconds since launch, memory rising
            rss['now'] = 65.0 + 20 * t
            on_tick(node, float(t))
        rss['now'] = 480.0
        for t in range(0, 41):  # from the first output: flat
            on_tick(node, float(t))
        return Watched(), True
    monkeypatch.setattr(soak, 'watch_player_and_node', watched)
    out = tmp_path / 'soak.json'
    assert soak.main(['--seconds', '40', '--warmup', '5', '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['rss_after_warmup_mib'] == report['rss_end_mib'] == 480.0
    assert report['problems'] == []


def test_a_raw_rig_soaks_with_its_own_model(monkeypatch):
    # A raw rig runs the node's registration and alignment; the ToF rig needs an 8x model.
    from depth_sr_ros.data.scene import recommended_model
    seen = {}

    class Watched:

        def destroy_node(self):
            pass

    def watched(seconds, rate, model, *args, **kwargs):
        seen.update(model=model, rig=kwargs['rig'])
        return Watched(), False
    monkeypatch.setattr(soak, 'watch_player_and_node', watched)
    assert soak.main(['--seconds', '20', '--rig', 'tof']) == 1  # the stub's processes "died"
    assert seen == {'model': recommended_model('tof'), 'rig': 'tof'}
    assert recommended_model('tof') != recommended_model('registered')
    assert soak.main(['--seconds', '20', '--rig', 'tof', '--model', 'x.pt']) == 1
    assert seen['model'] == 'x.pt'


def test_the_watching_tools_take_one_rule_for_the_model():
    # depth_sr_soak and depth_sr_live_demo: --model, else the rig's own; a bag (live demo)
    # leaves it to the node's default.
    from argparse import Namespace
    from depth_sr_ros.data.scene import recommended_model
    from depth_sr_ros.ros.watch import model_for
    assert model_for(Namespace(model='', rig='tof')) == recommended_model('tof')
    assert model_for(Namespace(model='x.pt', rig='tof', bag='')) == 'x.pt'
    assert model_for(Namespace(model='', rig='tof', bag='rec')) == ''


@pytest.mark.slow
def test_a_30_second_soak_with_the_player(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / 'tiny.pt'
    save_checkpoint(model, build_model('pag_net', **TINY), 'pag_net', TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    out = tmp_path / 'soak.json'
    result = subprocess.run(
        [sys.executable, '-m', 'depth_sr_ros.tools.soak', '--seconds', '30', '--warmup', '10',
         '--model', str(model), '--device', 'cpu', '--json', str(out),
         '--domain-id', str(170 + os.getpid() % 20)],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['problems'] == [] and report['outputs'] >= 3
    assert report['rss_floor_end_mib'] - report['rss_floor_start_mib'] < 50
