"""ONNX export, onnxruntime and OpenVINO: parity with PyTorch, metadata, errors, the node."""

import os

from depth_sr_ros.checkpoint import CheckpointError, METADATA_KEY, save_checkpoint
from depth_sr_ros.cli.export import main
from depth_sr_ros.data.degradations import bicubic_downsample, crop_to_multiple
from depth_sr_ros.data.middlebury import disparity_to_metres, load_pair
from depth_sr_ros.inference import Acceleration, load_predictor, Predictor
from depth_sr_ros.onnx_export import export_onnx, parity
from depth_sr_ros.onnx_predictor import OnnxPredictor, OpenVinoPredictor
from depth_sr_ros.preprocessing import PREPROCESSING
from helpers import FIXTURES, untrained
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter

TINY = {'scale': 4, 'channels': 8, 'growth': 4, 'rdb_layers': 1, 'num_blocks': 1}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp('onnx')
    pt = str(folder / 'tiny.pt')
    save_checkpoint(pt, untrained('pag_net', **TINY), 'pag_net', TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    onnx_path = str(folder / 'tiny.onnx')
    info = export_onnx(pt, onnx_path)
    assert info['arch'] == 'pag_net'
    return pt, onnx_path


def test_onnx_matches_pytorch_on_another_input_size(exported):
    assert parity(*exported, size=(19, 27)) < 1e-5


def test_onnx_predictor_matches_the_pytorch_predictor_on_a_real_pair(exported):
    pt, onnx_path = exported
    pair = load_pair(FIXTURES, 'cones')
    truth = crop_to_multiple(disparity_to_metres(pair['depth']), 4)
    depth_lr = bicubic_downsample(truth, 4)
    depth_lr[3:6, 3:6] = np.nan
    rgb = crop_to_multiple(pair['rgb'], 4)
    onnx_predictor = load_predictor(onnx_path, device='cpu')
    assert isinstance(onnx_predictor, OnnxPredictor) and onnx_predictor.scale == 4
    assert isinstance(load_predictor(pt, device='cpu'), Predictor)
    got = onnx_predictor(depth_lr, rgb)
    # ONNX runs float32; the PyTorch default on this CPU would be mixed precision.
    expected = load_predictor(pt, device='cpu', acceleration=Acceleration('float32'))(
        depth_lr, rgb)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) < 1e-4  # metres


def test_onnx_errors_are_one_line(tmp_path, exported):
    with pytest.raises(CheckpointError, match='not found'):
        OnnxPredictor(str(tmp_path / 'none.onnx'))
    (tmp_path / 'bad.onnx').write_bytes(b'not onnx')
    with pytest.raises(CheckpointError, match='not a readable ONNX model'):
        OnnxPredictor(str(tmp_path / 'bad.onnx'))
    import onnx
    damaged = onnx.load(exported[1])
    for prop in damaged.metadata_props:
        prop.value = '{}' if prop.key == METADATA_KEY else prop.value
    onnx.save(damaged, str(tmp_path / 'damaged.onnx'))
    with pytest.raises(CheckpointError, match='metadata is damaged') as damaged_error:
        OnnxPredictor(str(tmp_path / 'damaged.onnx'))
    assert str(damaged_error.value).startswith(f"model file '{tmp_path / 'damaged.onnx'}': ")
    with pytest.raises(ValueError, match='PyTorch options') as refused:
        load_predictor(exported[1], acceleration=Acceleration(precision='float16'))
    assert str(refused.value).startswith(f'{exported[1]}: ')  # names the file
    # Before any work: a missing model, and an output the loaders would not take for ONNX.
    assert main(['--model', str(tmp_path / 'none.pt'), '--output', str(tmp_path / 'x.onnx')]) == 2
    assert main(['--model', exported[0], '--output', str(tmp_path / 'x.pt')]) == 2
    assert not (tmp_path / 'x.pt').exists()
    # A PyTorch tool given an export says what it is, not that it is corrupt.
    with pytest.raises(CheckpointError, match='an ONNX export, not a PyTorch model file'):
        Predictor.from_checkpoint(exported[1])


def _refused(argv, capsys):
    """Return the last line main(argv) writes, after checking that it exits with status 2."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize('opset', ['5', '10', '24', '99'])
def test_an_opset_the_exporter_cannot_write_is_refused(opset, exported, tmp_path, capsys):
    out = tmp_path / 'x.onnx'
    last = _refused(['--model', exported[0], '--output', str(out), '--opset', opset], capsys)
    assert last.endswith(f"error: argument --opset: an integer within [11, 23], not '{opset}'")
    assert not out.exists()


@pytest.mark.parametrize('opset', ['11', '23'])
def test_the_first_and_the_last_opset_export(opset, exported, tmp_path):
    assert main(['--model', exported[0], '--output', str(tmp_path / 'x.onnx'),
                 '--opset', opset]) == 0


def test_an_output_that_is_the_model_is_refused_before_it_is_touched(
        exported, tmp_path, capsys):
    pt = tmp_path / 'm.pt'
    pt.write_bytes(open(exported[0], 'rb').read())
    before = pt.read_bytes()
    again = str(tmp_path / '.' / 'm.pt')  # another spelling of the same file
    assert main(['--model', str(pt), '--output', again]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"depth_sr_export: --output: output '{again}' is the input '{pt}'"]
    assert pt.read_bytes() == before


def test_the_node_runs_an_onnx_model(exported):
    from depth_sr_ros.ros.node import DepthSrNode
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=190 + os.getpid() % 10)
    try:
        node = DepthSrNode(context=context, parameter_overrides=[
            Parameter('model_path', value=exported[1])])
        assert isinstance(node.processor.upsampler, OnnxPredictor)
        node.stop()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_the_node_refuses_pytorch_options_for_an_onnx_model(exported):
    # Refused with the reason rather than run silently without the options asked for.
    from depth_sr_ros.ros.node import DepthSrNode
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=190 + os.getpid() % 10)
    try:
        with pytest.raises(ValueError, match='PyTorch options'):
            DepthSrNode(context=context, parameter_overrides=[
                Parameter('model_path', value=exported[1]),
                Parameter('precision', value='bfloat16')])
    finally:
        rclpy.try_shutdown(context=context)


AHMF_TINY = {'scale': 4, 'channels': 8}


def test_a_mixed_precision_export_runs_on_openvino_like_the_pytorch_mixed_mode(tmp_path):
    # AHMF (its downsampler's fused convs included) exported with its body in bfloat16:
    # onnxruntime cannot run that graph, so load_predictor hands it to OpenVINO, pinned to
    # the graph's own precisions. Its error against float32 must be of the order of
    # PyTorch's mixed mode, and far below OpenVINO's all-bfloat16 run of a float32 export
    # (which rounds the depth input and the global skip at 1/256).
    openvino = pytest.importorskip('openvino')
    pt, onnx_path = str(tmp_path / 'tiny.pt'), str(tmp_path / 'tiny_mixed.onnx')
    save_checkpoint(pt, untrained('ahmf', **AHMF_TINY), 'ahmf', AHMF_TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    assert main(['--model', pt, '--output', onnx_path, '--precision', 'mixed']) == 0
    assert export_onnx(pt, str(tmp_path / 'again.onnx'), precision='mixed')[
        'export_precision'] == 'mixed'
    assert parity(pt, onnx_path, precision='mixed') < 0.02  # normalised depth, 0..1
    pair = load_pair(FIXTURES, 'cones')
    depth_lr = bicubic_downsample(crop_to_multiple(disparity_to_metres(pair['depth']), 4), 4)
    rgb = crop_to_multiple(pair['rgb'], 4)
    predictor = load_predictor(onnx_path, device='cpu')
    assert isinstance(predictor, OpenVinoPredictor) and predictor.scale == 4
    got = predictor(depth_lr, rgb)
    mixed = load_predictor(pt, device='cpu', acceleration=Acceleration('mixed'))(depth_lr, rgb)
    exact = load_predictor(pt, device='cpu', acceleration=Acceleration('float32'))(
        depth_lr, rgb)
    export_onnx(pt, str(tmp_path / 'float32.onnx'))
    all_bf16 = OpenVinoPredictor(str(tmp_path / 'float32.onnx'), precision='bf16')(
        depth_lr, rgb)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(mixed))
    error = {name: np.nanmean(np.abs(out - exact)) for name, out in (
        ('openvino mixed', got), ('pytorch mixed', mixed), ('openvino bf16', all_bf16))}
    assert 0 < error['openvino mixed'] < 3 * error['pytorch mixed']
    # OpenVINO runs the bf16 hint in bfloat16 on CPUs with bfloat16 units, and emulates it on
    # AVX-512 CPUs without them (an Intel Xeon with AVX-512 but neither AMX nor AVX512-BF16:
    # 0.0011 against the mixed export's 0.00026); AVX2-only CPUs run it in float32.
    if ('BF16' in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
            or 'avx512f' in _cpu_flags()):
        assert error['openvino mixed'] < error['openvino bf16'] / 3
    else:
        assert error['openvino bf16'] < error['openvino mixed'] / 3


def _cpu_flags():
    """Return the CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].split() for line in f
                         if line.startswith('flags')), [])
    except OSError:
        return []


def test_the_node_serves_a_mixed_export_on_openvino(tmp_path):
    pytest.importorskip('openvino')
    from depth_sr_ros.ros.node import DepthSrNode
    pt, onnx_path = str(tmp_path / 'tiny.pt'), str(tmp_path / 'tiny_mixed.onnx')
    save_checkpoint(pt, untrained('ahmf', **AHMF_TINY), 'ahmf', AHMF_TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    export_onnx(pt, onnx_path, precision='mixed')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=190 + os.getpid() % 10)
    try:
        node = DepthSrNode(context=context, parameter_overrides=[
            Parameter('model_path', value=onnx_path)])
        assert isinstance(node.processor.upsampler, OpenVinoPredictor)
        node.stop()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_a_mixed_export_without_openvino_says_what_to_install(tmp_path, monkeypatch):
    pt, onnx_path = str(tmp_path / 'tiny.pt'), str(tmp_path / 'tiny_mixed.onnx')
    save_checkpoint(pt, untrained('ahmf', **AHMF_TINY), 'ahmf', AHMF_TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    export_onnx(pt, onnx_path, precision='mixed')
    monkeypatch.setitem(__import__('sys').modules, 'openvino', None)  # import fails
    with pytest.raises(CheckpointError, match='pip install openvino'):
        load_predictor(onnx_path, device='cpu')


def test_a_mixed_export_below_opset_13_is_refused(tmp_path, capsys):
    # AHMF's ReduceMean in bfloat16 is ONNX's from opset 13: OpenVINO cannot read it before.
    pt, out = str(tmp_path / 'tiny.pt'), tmp_path / 'tiny_mixed.onnx'
    save_checkpoint(pt, untrained('ahmf', **AHMF_TINY), 'ahmf', AHMF_TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    last = _refused(['--model', pt, '--output', str(out), '--precision', 'mixed', '--opset',
                     '12'], capsys)
    assert last.endswith('error: --opset: --precision mixed needs at least 13, not 12')
    assert not out.exists()
