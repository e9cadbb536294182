"""
depth_sr_benchmark: latency, FLOPs and memory of the networks, and the node's stages.

    depth_sr_benchmark --size 640x480 --runs 10 --json bench.json --markdown bench.md

For each network and scale (--models, default AHMF and PAG-Net at 4x, 8x and 16x) at the given
output size: FLOPs of one forward pass (counted by torch.utils.flop_counter), model-only
latency (warm-up, then --runs timed runs; CUDA events on a GPU), the achieved FLOP rate and
its ratio to the device's measured matmul rate, and peak memory. Then the node's per-frame
pipeline for the first model, stage by stage, on a player frame: message to numpy,
preprocessing, host to device, model, device to host, postprocessing, numpy to message.
Weights are random unless --model is given: the cost does not depend on them.
"""

import argparse
import json
import resource
import sys
import time

import cv2
from depth_sr_ros.checkpoint import load_checkpoint
from depth_sr_ros.conversions import color_to_array, depth_to_metres, metres_to_image
from depth_sr_ros.data.degradations import bicubic_downsample
from depth_sr_ros.inference import Predictor, select_device
from depth_sr_ros.networks import build_model
from depth_sr_ros.player import make_sequence
import numpy as np
from sensor_msgs.msg import Image
import torch
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_MODELS = 'ahmf:4,ahmf:8,ahmf:16,pag_net:4,pag_net:8,pag_net:16'


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn, device, runs, warmup):
    """Return the latencies of ``runs`` calls of fn() in seconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return np.array(times)


def matmul_rate(device, n=2048, runs=5):
    """Return the measured float32 matmul rate of the device in FLOP/s (a practical peak)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = time_call(lambda: a @ b, device, runs, 2)
    return 2 * n ** 3 / float(np.median(times))


def count_flops(model, depth, guide):
    """Return the FLOPs of one forward pass."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(depth, guide)
    return counter.get_total_flops()


def peak_memory(device):
    """Return peak memory in MiB: CUDA allocations on a GPU, process RSS on the CPU."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_model(name, scale, size, device, runs, warmup, model=None):
    """Return a result dict for one network at one scale and output size."""
    width, height = size
    if width % scale or height % scale:
        raise ValueError(f'{width}x{height} is not a multiple of scale {scale}')
    model = (model or build_model(name, scale=scale)).to(device).eval()
    depth = torch.rand(1, 1, height // scale, width // scale, device=device)
    guide = torch.rand(1, 3, height, width, device=device)
    flops = count_flops(model, depth, guide)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    def forward():
        with torch.inference_mode():
            model(depth, guide)
    times = time_call(forward, device, runs, warmup)
    median = float(np.median(times))
    return {'network': name, 'scale': scale, 'size': f'{width}x{height}',
            'gflop': flops / 1e9, 'median_ms': median * 1e3,
            'p95_ms': float(np.percentile(times, 95)) * 1e3,
            'achieved_gflops': flops / median / 1e9, 'peak_memory_mib': peak_memory(device)}


def bench_pipeline(predictor, size, runs, warmup):
    """Time the node's stages on a player frame resized to ``size``; return {stage: ms}."""
    _, color, depth_hr = make_sequence(1, predictor.scale)[0]
    color = cv2.resize(color, size, interpolation=cv2.INTER_AREA)
    depth_hr = cv2.resize(depth_hr, size, interpolation=cv2.INTER_NEAREST)
    depth_lr = bicubic_downsample(depth_hr, predictor.scale)
    header = Image().header
    depth_msg = metres_to_image(depth_lr, '16UC1', header)
    color_msg = Image(height=color.shape[0], width=color.shape[1], encoding='rgb8',
                      step=color.shape[1] * 3, data=color.tobytes())
    stages = {}

    def frame():
        started = time.perf_counter()
        depth = depth_to_metres(depth_msg)
        pixels, order = color_to_array(color_msg)
        to_numpy = time.perf_counter() - started
        result = predictor(depth, pixels, order)
        started = time.perf_counter()
        metres_to_image(result, '16UC1', header)
        to_message = time.perf_counter() - started
        times = dict(predictor.clock.times, message_to_numpy=to_numpy,
                     numpy_to_message=to_message)
        for key, value in times.items():
            stages.setdefault(key, []).append(value)
    for _ in range(warmup):
        frame()
    stages.clear()
    for _ in range(runs):
        frame()
    order = ('message_to_numpy', 'preprocess', 'to_device', 'model', 'to_host', 'upsample',
             'postprocess', 'numpy_to_message')
    medians = {k: float(np.median(stages[k])) * 1e3 for k in order if k in stages}
    medians.pop('upsample', None)  # what is left of _upsample after its own stages: ~0
    medians['total'] = sum(medians.values())
    return medians


def markdown(results, pipeline, device_name, rate):
    """Return the results as markdown tables."""
    lines = [f'Device: {device_name}; measured float32 matmul rate {rate / 1e9:.0f} GFLOP/s.',
             '', '| network | scale | output | GFLOP | median ms | p95 ms | GFLOP/s | '
             'of matmul rate | peak memory MiB |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        lines.append(f"| {r['network']} | {r['scale']}x | {r['size']} | {r['gflop']:.1f} | "
                     f"{r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['achieved_gflops']:.0f} | "
                     f"{r['achieved_gflops'] * 1e9 / rate:.0%} | {r['peak_memory_mib']:.0f} |")
    if pipeline:
        lines += ['', f"Node pipeline per frame ({pipeline['label']}), median ms:", '',
                  '| ' + ' | '.join(pipeline['stages']) + ' |',
                  '|---' * len(pipeline['stages']) + '|',
                  '| ' + ' | '.join(f'{v:.2f}' for v in pipeline['stages'].values()) + ' |']
    return '\n'.join(lines)


def main(argv=None):
    """Entry point of depth_sr_benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--size', default='640x480', help='output WIDTHxHEIGHT')
    parser.add_argument('--models', default=DEFAULT_MODELS,
                        help='comma-separated network:scale pairs')
    parser.add_argument('--model', default='', help='benchmark this model file instead')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0, help='CPU threads; 0 = default')
    parser.add_argument('--json', default='')
    parser.add_argument('--markdown', default='')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    size = tuple(int(v) for v in args.size.lower().split('x'))
    if args.model:
        model, info = load_checkpoint(args.model, device)
        cases = [(info['arch'], info['arch_kwargs']['scale'], model)]
    else:
        cases = [(n, int(s), None) for n, s in (c.split(':') for c in args.models.split(','))]
    device_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                   else f'CPU, {torch.get_num_threads()} threads')
    rate = matmul_rate(device)
    results = []
    for name, scale, model in cases:
        results.append(bench_model(name, scale, size, device, args.runs, args.warmup, model))
        print(f"{name} {scale}x: {results[-1]['median_ms']:.1f} ms", file=sys.stderr)
    name, scale, model = cases[0]
    predictor = Predictor(model or build_model(name, scale=scale), scale, device=str(device))
    if device.type == 'cuda':
        predictor.clock.sync = lambda: torch.cuda.synchronize(device)
    pipeline = {'label': f'{name} {scale}x, {args.size} player frame',
                'stages': bench_pipeline(predictor, size, args.runs, args.warmup)}
    report = {'device': device_name, 'matmul_gflops': rate / 1e9, 'models': results,
              'pipeline': pipeline, 'torch': torch.__version__}
    text = markdown(results, pipeline, device_name, rate)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
