"""The benchmark command on a small size (the real runs are in the README)."""

import importlib.util
import json
import os
import subprocess
import sys

from depth_sr_ros.networks import build_model
from depth_sr_ros.tools import benchmark
from depth_sr_ros.tools.benchmark import count_flops, main
import pytest
import torch


def test_flop_count_matches_a_hand_count_for_one_conv():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    class Net(torch.nn.Module):

        def forward(self, depth, guide):
            return conv(guide)
    flops = count_flops(Net(), torch.rand(1, 1, 4, 4), torch.rand(1, 3, 16, 16))
    assert flops == 2 * 3 * 8 * 9 * 16 * 16


@pytest.mark.skipif(not os.path.exists('/proc/self/clear_refs'), reason='Linux only')
def test_each_rows_cpu_peak_memory_is_its_own():
    # A 400 MiB array freed before the reset is not the next row's peak; one made after is.
    cpu = torch.device('cpu')
    big = torch.ones(100 * 2 ** 20)
    before = benchmark.peak_memory(cpu)
    del big
    benchmark.reset_peak_memory(cpu)
    after = benchmark.peak_memory(cpu)
    assert after < before - 300
    big = torch.ones(100 * 2 ** 20)
    assert benchmark.peak_memory(cpu) > after + 300
    del big


def test_benchmark_writes_json_and_markdown(tmp_path):
    out = tmp_path / 'bench.json'
    md = tmp_path / 'bench.md'
    assert main(['--size', '64x48', '--models', 'pag_net:2,ahmf:4', '--runs', '1',
                 '--warmup', '0', '--device', 'cpu', '--json', str(out),
                 '--markdown', str(md), '--registration', 'aligned,tof']) == 0
    report = json.loads(out.read_text())
    assert [r['rig'] for r in report['registration']] == ['aligned', 'tof']
    assert report['registration'][1]['lr_grid'] == '640x360'  # pag_net 2x of 1280x720
    assert all(r['median_ms'] > 0 for r in report['registration'])
    assert report['registration'][0]['one_thread_ms'] is None  # aligned: no threads
    assert report['registration'][1]['one_thread_ms'] > 0
    assert all(0 < r['alignment_per_frame_ms'] < r['alignment_ms'] for r in report['registration'])
    assert [m['network'] for m in report['models']] == ['pag_net', 'ahmf']
    assert all(m['gflop'] > 0 and m['median_ms'] > 0 for m in report['models'])
    if importlib.util.find_spec('rclpy') and importlib.util.find_spec('sensor_msgs'):
        stages = report['pipeline']['stages']
        assert {'preprocess', 'model', 'messages and rest', 'total'} <= set(stages)
        assert abs(stages['total'] - sum(v for k, v in stages.items() if k != 'total')) < 1e-6
        assert 'skipped' not in report['pipeline']
    else:  # without ROS 2 (test_benchmark_times_the_networks_without_ros)
        assert report['pipeline']['skipped'].startswith('it needs ROS 2')
    assert '| pag_net | 2x | 64x48 |' in md.read_text()
    ahmf = build_model('ahmf', scale=4)
    assert report['models'][1]['gflop'] == count_flops(
        ahmf.eval(), torch.rand(1, 1, 12, 16), torch.rand(1, 3, 48, 64)) / 1e9


@pytest.mark.parametrize('option,value,said', [
    ('--model', '/nonexistent/m.pt', "--model: model file '/nonexistent/m.pt': not found"),
    ('--variants', 'device_io,bogus', "'openvino_f32', 'openvino_bf16', 'openvino_mixed', not "
                                      "'device_io,bogus'"),
    ('--registration', 'aligned,bogus', "of 'aligned', 'd435', 'azure_nfov', 'tof', not"),
    ('--device', 'bogus', "--device: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")])
def test_bad_input_is_one_error_line_and_exit_2_before_any_timing(
        option, value, said, monkeypatch, capsys):
    def timed(*args):
        raise AssertionError('timed before the command line was checked')
    monkeypatch.setattr(benchmark, 'time_call', timed)
    with pytest.raises(SystemExit) as stopped:
        main(['--size', '64x48', '--models', 'pag_net:2', '--runs', '1', option, value])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: ' in last and said in last, last


# Runs the benchmark in a Python where ROS 2's packages cannot be imported, as on a GPU
# machine that has PyTorch but no ROS 2.
ROS_PACKAGES = ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'builtin_interfaces',
                'rosidl_runtime_py', 'message_filters', 'cv_bridge', 'tf2_ros')
WITHOUT_ROS = f"""
import sys
ROS_PACKAGES = {ROS_PACKAGES!r}
class NoRos:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ROS_PACKAGES:
            raise ImportError(f'no module named {{name!r}} (blocked)')
sys.meta_path.insert(0, NoRos())
from depth_sr_ros.tools.benchmark import main
sys.exit(main(sys.argv[1:]))
"""


def test_benchmark_times_the_networks_without_ros(tmp_path):
    out = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, '-c', WITHOUT_ROS, '--size', '64x48', '--models', 'pag_net:2', '--runs',
         '1', '--warmup', '0', '--device', 'cpu', '--variants', '', '--json', str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report['models'][0]['median_ms'] > 0
    # reported as a variant that cannot run is: a 'skipped' key with the reason, no stages
    assert report['pipeline']['skipped'].startswith('it needs ROS 2 (')
    assert 'stages' not in report['pipeline']
    assert ('Node pipeline per frame (pag_net 2x, 64x48 player frame): skipped: it needs ROS 2'
            in result.stdout)
    result = subprocess.run([sys.executable, '-c', WITHOUT_ROS, '--dds-rates', '15'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert '--dds-rates runs the node, which needs ROS 2' in result.stderr


@pytest.mark.slow
def test_benchmark_variants_threads_and_the_node_under_dds(tmp_path, model_path):
    out = tmp_path / 'bench.json'
    md = tmp_path / 'bench.md'
    domain = 230 + os.getpid() % 3  # 230-232: no other test module uses these
    assert main(['--size', '64x48', '--model', model_path, '--runs', '2', '--warmup', '0',
                 '--device', 'cpu', '--variants', 'device_io,bfloat16,cuda_graphs',
                 '--threads-sweep', '1,2', '--dds-rates', '15', '--dds-seconds', '8',
                 '--domain-id', str(domain), '--json', str(out), '--markdown', str(md)]) == 0
    report = json.loads(out.read_text())
    variants = {v['variant']: v for v in report['variants']}
    assert list(variants) == ['numpy_io', 'device_io', 'bfloat16', 'cuda_graphs']
    assert variants['device_io']['max_error_mm'] < 0.01  # the same arithmetic, elsewhere
    assert 0 < variants['bfloat16']['max_error_mm'] < 200
    assert 'needs a CUDA device' in variants['cuda_graphs']['skipped']
    assert [t['threads'] for t in report['threads']] == [1, 2]
    dds = report['dds'][0]
    assert dds['ok'] and dds['outputs'] >= 1 and dds['pairs_in_hz'] > 0, dds
    assert 0 < dds['node_p50_ms'] <= dds['node_p95_ms'] and dds['receive_p50_ms'] > 0, dds
    assert dds['dropped_pairs'] is not None
    text = md.read_text()
    assert '| bfloat16 |' in text and '| 15 | 8 |' in text


def test_a_failed_dds_run_is_a_failed_row_not_a_measurement():
    # A node that did not start printed '| 15 | 2 | 0.0 | 0.00 | - / - | - / - | None |' and
    # the command exited 0.
    from depth_sr_ros.tools.benchmark import markdown
    failed = {'rate_hz': 15, 'seconds': 2.0, 'ok': False, 'model': 'm.pt', 'outputs': 0,
              'output_hz': 0.0, 'pairs_in_hz': 0, 'node_p50_ms': None, 'node_p95_ms': None,
              'receive_p50_ms': None, 'receive_p95_ms': None, 'dropped_pairs': None}
    text = markdown([], {'label': 'x', 'skipped': 'not timed'}, 'CPU', 1e9, dds=[failed])
    row, = [line for line in text.splitlines() if line.startswith('| 15 |')]
    assert 'failed: the player or the node stopped early' in row and 'None' not in row
