"""
The GPU paths fail safe, tested on the CPU.

A failing compile or capture falls back to eager, a model that cannot run is refused at load,
onnxruntime's providers get the device index and TensorRT's caches, an unavailable provider
is refused or said, a missing cuda:N is one line.
"""

from depth_sr_ros.checkpoint import CheckpointError, save_checkpoint
from depth_sr_ros.inference import (
    Acceleration, load_predictor, native_bfloat16, Predictor, select_device)
from depth_sr_ros.onnx_export import export_onnx
from depth_sr_ros.onnx_predictor import onnx_providers, OnnxPredictor, trt_cache_dir
from depth_sr_ros.preprocessing import PREPROCESSING
from depth_sr_ros.ros.node import is_out_of_memory
from helpers import untrained
from node_graph import TINY
import numpy as np
import pytest
import torch


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / 'tiny.pt'
    save_checkpoint(path, untrained('pag_net', **TINY), 'pag_net', TINY, PREPROCESSING, {})
    return str(path)


def test_a_failing_compile_falls_back_to_eager_once_and_serves(tiny_file, monkeypatch):
    calls = []

    def broken_compile(model, **kwargs):
        def compiled(*args):
            calls.append(1)
            raise RuntimeError('BackendCompilerFailed: Cannot find a working triton '
                               'installation')
        return compiled
    monkeypatch.setattr(torch, 'compile', broken_compile)
    warnings = []
    predictor = load_predictor(tiny_file, 'cpu', Acceleration(compile_mode='torch_compile'),
                               warn=warnings.append)  # the warm-up meets the failure
    assert len(warnings) == 1 and 'torch_compile failed (RuntimeError: Backend' in warnings[0]
    assert 'running eager' in predictor.eager_because
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 2, (12, 16)).astype(np.float32)
    color = rng.integers(0, 256, (48, 64, 3), np.uint8)
    out = predictor(depth, color)
    eager = Predictor(untrained('pag_net', **TINY), 'cpu')(depth, color)
    np.testing.assert_allclose(out, eager, atol=1e-5)
    predictor(depth, color)
    assert len(calls) == 1 and len(warnings) == 1  # not retried, not said again


def test_a_model_whose_warm_up_fails_is_refused_at_load(tiny_file, monkeypatch):
    def broken(self, depth, guide):
        raise RuntimeError('CUDA error: no kernel image is available for execution')
    monkeypatch.setattr(type(untrained('pag_net', **TINY)), 'forward', broken)
    with pytest.raises(CheckpointError, match='the warm-up forward pass failed: RuntimeError'):
        load_predictor(tiny_file, 'cpu')


def test_onnx_providers_carry_the_device_index_and_tensorrt_caches():
    gpu = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    providers = dict(onnx_providers('cuda:1', available=gpu))
    assert list(providers) == gpu
    trt = providers['TensorrtExecutionProvider']
    assert trt['device_id'] == 1 and providers['CUDAExecutionProvider'] == {'device_id': 1}
    assert trt['trt_engine_cache_enable'] and trt['trt_timing_cache_enable']
    assert trt['trt_engine_cache_path'] == trt['trt_timing_cache_path'] == trt_cache_dir()
    assert dict(onnx_providers('cuda', available=gpu))['CUDAExecutionProvider'] == {
        'device_id': 0}
    assert onnx_providers('cpu', available=gpu) == [('CPUExecutionProvider', {})]


def test_onnx_without_a_gpu_provider_is_refused_or_said(tiny_file, tmp_path):
    onnx_path = str(tmp_path / 'tiny.onnx')
    export_onnx(tiny_file, onnx_path)
    with pytest.raises(RuntimeError, match="device 'cuda' was requested but onnxruntime runs "
                                           'on CPUExecutionProvider.*device_fallback is false'):
        OnnxPredictor(onnx_path, 'cuda', fallback=False)
    warnings = []
    predictor = OnnxPredictor(onnx_path, 'cuda:1', fallback=True, warn=warnings.append)
    assert predictor.device == 'CPUExecutionProvider'
    assert len(warnings) == 1 and 'runs on CPUExecutionProvider' in warnings[0]
    assert predictor.warm_up() > 0


def test_a_missing_gpu_index_is_one_line_naming_the_gpus_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda i: 'Orin')
    with pytest.raises(RuntimeError, match=r"device 'cuda:2' does not exist; present: "
                                           r'cuda:0 \(Orin\)$'):
        select_device('cuda:2')
    assert select_device('cuda') == torch.device('cuda', 0)  # resolved once, with its index


def test_bfloat16_is_refused_on_a_gpu_without_fast_bfloat16(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    # GPU 0 an H100 (9.0), GPU 1 a Volta (7.0): each is asked about itself, not the current one.
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda device=None: (9, 0) if torch.device(device).index == 0 else (7, 0))
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: 'Xavier')
    assert native_bfloat16('cuda:0') and not native_bfloat16('cuda:1')
    with pytest.raises(ValueError, match='Xavier has no fast bfloat16'):
        Acceleration(precision='bfloat16').check(torch.device('cuda', 1))


def test_cudnn_and_cublas_allocation_failures_count_as_out_of_memory():
    assert is_out_of_memory(RuntimeError('cuDNN error: CUDNN_STATUS_ALLOC_FAILED'))
    assert is_out_of_memory(RuntimeError('CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate'))
    assert not is_out_of_memory(RuntimeError('shape mismatch'))
