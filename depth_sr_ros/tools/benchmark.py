"""
depth_sr_benchmark: latency, FLOPs and memory of the networks, and the node's stages.

    depth_sr_benchmark --size 640x480 --runs 10 --json bench.json --markdown bench.md

For each network and scale (--models, default AHMF and PAG-Net at 4x, 8x and 16x) at the given
output size: FLOPs of one forward pass (counted by torch.utils.flop_counter), model-only
latency (warm-up, then --runs timed runs; CUDA events on a GPU), the achieved FLOP rate and
its ratio to the device's measured matmul rate, and peak memory. Then the node's per-frame
pipeline for the first model on a player frame: FrameProcessor.process_pair, the call the
node makes for each pair, in all, with the network's stages (preprocessing, host to device,
model, device to host, postprocessing) and the rest (messages, route, alignment).
Then the Predictor's acceleration switches one by one against float32 with numpy pre- and
post-processing (--variants; time per frame and the error against float32 in millimetres on a
player frame), CPU thread counts (--threads-sweep), and the whole node under a real DDS stream
from the player in another process at each of --dds-rates (stamp-to-publish latency from the
node's diagnostics, stamp-to-receive in a third process, dropped pairs).
Weights are new (untrained) unless --model is given: the cost does not depend on them, but a
new network returns plain bicubic upsampling, so give --model for meaningful variant errors.
Without ROS 2's Python packages (a GPU machine with PyTorch alone) the networks, the switches
and the registration are timed, and the node's pipeline and DDS runs are not.
"""

import argparse
import copy
import json
import os
import resource
import sys
import time

import cv2
from depth_sr_ros.checkpoint import CheckpointError, load_checkpoint
from depth_sr_ros.console import (
    image_size, interruptible, number, numbers, one_of, process_memory_mib)
from depth_sr_ros.data.degradations import bicubic_downsample
from depth_sr_ros.data.scene import RIGS
from depth_sr_ros.data.sequences import COLOR_SIZE, FOCAL, make_sequence
from depth_sr_ros.files import unwritable, write_text_atomically
from depth_sr_ros.geometry.camera import pinhole_camera
from depth_sr_ros.inference import Acceleration, device_option, Predictor, select_device
from depth_sr_ros.networks import build_model, MODELS
from depth_sr_ros.onnx_predictor import OpenVinoPredictor
from depth_sr_ros.ros import DOMAIN_ID, domain_id, ONE_COMPUTER_TRANSPORTS
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_MODELS = 'ahmf:4,ahmf:8,ahmf:16,pag_net:4,pag_net:8,pag_net:16'
# name -> how the Predictor runs; 'numpy_io' is the reference the others are compared with.
# Each adds one switch to the one before it up to 'channels_last' (the node's default);
# the rest start from the default.
VARIANTS = {
    'numpy_io': Acceleration('float32', device_io=False, channels_last=False),
    'device_io': Acceleration('float32', device_io=True, channels_last=False),
    'channels_last': Acceleration('float32', device_io=True, channels_last=True),
    'mixed': Acceleration(precision='mixed'),
    'bfloat16': Acceleration(precision='bfloat16'),
    'float16': Acceleration(precision='float16'),
    'torch_compile': Acceleration(compile_mode='torch_compile'),
    'cuda_graphs': Acceleration(compile_mode='cuda_graphs'),
    'float16+cuda_graphs': Acceleration(precision='float16', compile_mode='cuda_graphs'),
}
# OpenVINO runs an ONNX export of the model (optional: pip install openvino): name ->
# (depth_sr_export's precision, OpenVINO's pinned inference precision).
OPENVINO_VARIANTS = {'openvino_f32': ('float32', 'f32'), 'openvino_bf16': ('float32', 'bf16'),
                     'openvino_mixed': ('mixed', 'f32')}
CPU_VARIANTS = ('numpy_io,device_io,channels_last,mixed,bfloat16,openvino_f32,openvino_bf16,'
                'openvino_mixed')
GPU_VARIANTS = ('numpy_io,device_io,channels_last,mixed,bfloat16,float16,cuda_graphs,'
                'float16+cuda_graphs')


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
            # Record on the device's own stream: Event.record() alone uses the current
            # device's, so on cuda:1 it would time only the kernel launches.
            stream = torch.cuda.current_stream(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record(stream)
            fn()
            end.record(stream)
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


def reset_peak_memory(device):
    """
    Start a new peak for peak_memory, so that each row reports its own and not the largest so far.

    On the CPU, Linux resets a process's peak RSS (VmHWM) when "5" is written to
    /proc/self/clear_refs; elsewhere the peak stays the process's since its start.
    """
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_memory(device):
    """
    Return peak memory in MiB since reset_peak_memory.

    CUDA allocations on a GPU; on the CPU the process's resident set (the interpreter, torch,
    the data and what earlier rows left included): /proc/self/status's VmHWM, else getrusage's
    peak since start.
    """
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    peak = process_memory_mib('self', 'VmHWM')
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pin_cuda_float32(device):
    """
    Make float32 on CUDA mean float32, and autotune cuDNN for every measurement.

    torch 2.13 uses TF32 for float32 convolutions by default, so the float16 / bf16 errors
    would be against TF32; and the model-only timings ran before autotuning was on while the
    variants' ran after. Both are now taken alike.
    """
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True


def bench_model(name, scale, size, device, runs, warmup, model=None):
    """Return a result dict for one network at one scale and output size."""
    width, height = size
    if width % scale or height % scale:
        raise ValueError(f'{width}x{height} is not a multiple of scale {scale}')
    model = (model or build_model(name, scale=scale)).to(device).eval()
    depth = torch.rand(1, 1, height // scale, width // scale, device=device)
    guide = torch.rand(1, 3, height, width, device=device)
    flops = count_flops(model, depth, guide)
    reset_peak_memory(device)

    def forward():
        with torch.inference_mode():
            model(depth, guide)
    times = time_call(forward, device, runs, warmup)
    median = float(np.median(times))
    return {'network': name, 'scale': scale, 'size': f'{width}x{height}',
            'gflop': flops / 1e9, 'median_ms': median * 1e3,
            'p95_ms': float(np.percentile(times, 95)) * 1e3,
            'achieved_gflops': flops / median / 1e9, 'peak_memory_mib': peak_memory(device)}


def player_frame(size, scale):
    """Return (LR depth in metres, RGB colour) of a player frame with ``size`` colour."""
    _, color, depth_hr = make_sequence(1, scale)[0]
    color = cv2.resize(color, size, interpolation=cv2.INTER_AREA)
    depth_hr = cv2.resize(depth_hr, size, interpolation=cv2.INTER_NEAREST)
    return bicubic_downsample(depth_hr, scale), color


def bench_pipeline(predictor, size, runs, warmup):
    """
    Time the node's path for one pair on a player frame resized to ``size``: {stage: ms}.

    The pair goes through FrameProcessor.process_pair with the node's default settings (what
    the node's inference thread runs for each pair: camera_info matching, the route, the
    alignment, the network, the output messages); 'total' is that whole call, the other
    stages are the network's own (Predictor.clock) and what is left is 'messages and rest'.
    Without ROS 2's Python packages (rclpy, sensor_msgs), e.g. on a GPU machine that has only
    PyTorch, nothing is timed: ImportError.
    """
    from depth_sr_ros.ros.conversions import camera_info_message, image_message, metres_to_image
    from depth_sr_ros.ros.extrinsics import StaticExtrinsics
    from depth_sr_ros.ros.pipeline import FrameProcessor, Settings
    from depth_sr_ros.ros.sync import CameraInfoStore
    from sensor_msgs.msg import Image
    depth_lr, color = player_frame(size, predictor.scale)
    frame_id = 'colour'
    depth_msg = metres_to_image(depth_lr, '16UC1', Image().header)
    color_msg = image_message(color, 'rgb8', frame_id)
    depth_msg.header.frame_id = frame_id
    width, height = size
    color_camera = pinhole_camera(width, height, FOCAL * width / COLOR_SIZE[0])
    infos = []
    for camera in (color_camera.resized(width // predictor.scale, height // predictor.scale),
                   color_camera):
        store = CameraInfoStore()
        store.add(camera_info_message(camera, frame_id), 0)
        infos.append(store)
    processor = FrameProcessor(predictor)
    settings, extrinsics = Settings(), StaticExtrinsics()
    stages = {}

    def frame():
        started = time.perf_counter()
        processor.process_pair(depth_msg, color_msg, infos[0], infos[1], settings, extrinsics)
        times = dict(predictor.clock.times, total=time.perf_counter() - started)
        for key, value in times.items():
            stages.setdefault(key, []).append(value)
    for _ in range(warmup):
        frame()
    stages.clear()
    for _ in range(runs):
        frame()
    order = ('preprocess', 'to_device', 'model', 'postprocess_device', 'to_host', 'upsample',
             'postprocess', 'total')
    medians = {k: float(np.median(stages[k])) * 1e3 for k in order if k in stages}
    medians.pop('upsample', None)  # what is left of _upsample after its own stages: ~0
    total = medians.pop('total')
    medians['messages and rest'] = max(0.0, total - sum(medians.values()))
    medians['total'] = total
    return medians


def bench_variants(model, scale, size, device, runs, warmup, names, arch=None,
                   arch_kwargs=None):
    """
    Time whole Predictor calls on a player frame for each variant; return a list of dicts.

    Each variant gets its own copy of ``model``; the error is against 'numpy_io' (float32)
    over the pixels valid in both, in millimetres. A variant the device cannot run is listed
    with the reason. ``arch`` and ``arch_kwargs`` describe ``model`` for the OpenVINO variants
    (which run an ONNX export of it).
    """
    depth_lr, color = player_frame(size, scale)
    rows, reference = [], None
    for name in ['numpy_io'] + [n for n in names if n != 'numpy_io']:
        try:
            if name in OPENVINO_VARIANTS:
                predictor = openvino_predictor(model, arch, arch_kwargs,
                                               OPENVINO_VARIANTS[name])
            else:
                predictor = Predictor(copy.deepcopy(model), device=str(device),
                                      acceleration=copy.deepcopy(VARIANTS[name]),
                                      warn=lambda message: print(message, file=sys.stderr))
            times = time_call(lambda: predictor(depth_lr, color), device, runs, max(warmup, 1))
            out = predictor(depth_lr, color)
        except (ValueError, RuntimeError, ImportError) as error:
            rows.append({'variant': name, 'skipped': str(error).splitlines()[0]})
            continue
        if reference is None:
            reference = out
        both = np.isfinite(out) & np.isfinite(reference)
        error_mm = np.abs(out[both] - reference[both]) * 1e3
        rows.append({'variant': name, 'median_ms': float(np.median(times)) * 1e3,
                     'p95_ms': float(np.percentile(times, 95)) * 1e3,
                     'max_error_mm': float(error_mm.max()) if error_mm.size else float('nan'),
                     'mean_error_mm': float(error_mm.mean()) if error_mm.size else float('nan'),
                     'p99_error_mm': (float(np.percentile(error_mm, 99)) if error_mm.size
                                      else float('nan')),
                     'invalid_differs': int((np.isfinite(out) != np.isfinite(reference)).sum())})
    return rows


def openvino_predictor(model, arch, arch_kwargs, variant):
    """
    Export ``model`` to a temporary ONNX file and return an OpenVinoPredictor for it.

    The predictor holds the compiled network in memory; the temporary files are removed.
    """
    import tempfile
    from depth_sr_ros.checkpoint import save_checkpoint
    from depth_sr_ros.onnx_export import export_onnx
    from depth_sr_ros.preprocessing import PREPROCESSING
    import openvino  # noqa: F401 (ImportError: the variant is listed as skipped)
    with tempfile.TemporaryDirectory(prefix='depth_sr_openvino_') as folder:
        checkpoint = os.path.join(folder, 'model.pt')
        save_checkpoint(checkpoint, copy.deepcopy(model).float().to(
            memory_format=torch.contiguous_format), arch, arch_kwargs, PREPROCESSING, {})
        export_precision, hint = variant
        export_onnx(checkpoint, os.path.join(folder, 'model.onnx'), precision=export_precision)
        return OpenVinoPredictor(os.path.join(folder, 'model.onnx'), 'cpu', precision=hint)


def bench_registration(rigs, scale, runs):
    """
    Time the registration of each scene rig's depth onto the LR grid of its colour camera.

    The stage FrameProcessor runs before the network for depth that is not on the LR grid
    already (geometry.registration: reduce_registered or register_raw); numpy on the CPU. Raw
    rigs are also timed on one thread (register_raw's default splits the work over the CPU's
    cores).
    """
    from depth_sr_ros.data.scene import make_scene, render_rig
    from depth_sr_ros.alignment import (
        Aligner, finer_grid, look_every, lr_max_shift, matching_grid, MAX_SHIFT)
    from depth_sr_ros.geometry.grids import plan_grids, resize_color
    from depth_sr_ros.geometry.registration import (
        reduce_registered, register_raw, REGISTRATION_THREADS)
    scene = make_scene()
    rows = []
    for name in rigs:
        rig = RIGS[name]
        frame = render_rig(scene, rig)
        grids = plan_grids(rig.color, scale)

        def register(threads, finer=1):
            lr = matching_grid(grids.lr, finer)
            if rig.registered:
                return reduce_registered(frame['depth'], rig.depth, lr)
            return register_raw(frame['depth'], rig.depth, rig.depth_to_color, lr, threads)

        def median_ms(threads):
            times = time_call(lambda: register(threads), torch.device('cpu'), runs, 1)
            return float(np.median(times)) * 1e3

        # The alignment of one frame it looks at (at 8x and 16x the registration onto its
        # finer grid, then the edge correlation), and per frame as the node runs it (on every
        # alignment.look_every-th frame).
        finer, aligner = finer_grid(scale), Aligner(lr_max_shift(MAX_SHIFT, scale), every=1)
        color = resize_color(frame['color'], grids)

        def align():
            seen = register(REGISTRATION_THREADS, finer) if finer > 1 else low
            aligner.observe(seen, color, finer)
        low = register(REGISTRATION_THREADS)
        correlate = float(np.median(time_call(align, torch.device('cpu'), runs, 1))) * 1e3
        rows.append({'rig': name, 'depth': f'{rig.depth.width}x{rig.depth.height}',
                     'lr_grid': f'{grids.lr.width}x{grids.lr.height}',
                     'threads': 1 if rig.registered else REGISTRATION_THREADS,
                     'median_ms': median_ms(REGISTRATION_THREADS),
                     'one_thread_ms': None if rig.registered else median_ms(1),
                     'alignment_ms': correlate,
                     'alignment_per_frame_ms': correlate / look_every(
                         matching_grid(grids.lr, finer).shape)})
    return rows


def bench_threads(model, scale, size, runs, warmup, counts):
    """Return the CPU time per Predictor call for each thread count in ``counts``."""
    depth_lr, color = player_frame(size, scale)
    predictor = Predictor(copy.deepcopy(model), device='cpu')
    before = torch.get_num_threads()
    rows = []
    try:
        for count in counts:
            torch.set_num_threads(count)
            times = time_call(lambda: predictor(depth_lr, color), torch.device('cpu'), runs,
                              max(warmup, 1))
            rows.append({'threads': count, 'median_ms': float(np.median(times)) * 1e3})
    finally:
        torch.set_num_threads(before)
    return rows


def bench_dds(rates, seconds, model_path, device, domain_id):
    """
    Run the player and the node as two processes at each rate; return a dict per rate.

    node_p50/p95_ms: stamp-to-publish latency from the node's diagnostics (median of the
    periods' p50, largest p95); receive_p50/p95_ms: stamp to arrival in this process.
    Without rates nothing is run (and rclpy is not needed).
    """
    if not rates:
        return []
    import rclpy
    from depth_sr_ros.ros.conversions import stamp_ns
    from depth_sr_ros.ros.watch import diagnostic_number, watch_player_and_node
    rows = []
    for rate in rates:
        watcher, ok = watch_player_and_node(seconds, rate, model_path, device, domain_id,
                                            'depth_sr_benchmark', inputs=False,
                                            from_first_output=True)
        try:
            diagnostics = [d for d in watcher.diagnostics if float(d['output (Hz)']) > 0]
            received = [t - stamp_ns(m.header.stamp) * 1e-9 for t, m in watcher.outputs]
            rows.append({
                'rate_hz': rate, 'seconds': watcher.watched, 'ok': ok and not watcher.interrupted,
                'outputs': len(received),
                'model': model_path,
                'output_hz': len(received) / watcher.watched,
                'pairs_in_hz': float(np.median([float(d['input pairs (Hz)'])
                                                for d in diagnostics])) if diagnostics else 0,
                'node_p50_ms': float(np.median([diagnostic_number(d['latency p50 (ms)'])
                                                for d in diagnostics])) if diagnostics else None,
                'node_p95_ms': max(diagnostic_number(d['latency p95 (ms)'])
                                   for d in diagnostics) if diagnostics else None,
                'receive_p50_ms': float(np.percentile(received, 50)) * 1e3 if received else None,
                'receive_p95_ms': float(np.percentile(received, 95)) * 1e3 if received else None,
                'dropped_pairs': (int(watcher.diagnostics[-1]['dropped pairs'])
                                  if watcher.diagnostics else None),
            })
        finally:
            watcher.destroy_node()
            rclpy.try_shutdown()
    return rows


def _ms(value):
    return '-' if value is None else f'{value:.1f}'


def markdown(results, pipeline, device_name, rate, variants=(), threads=(), dds=(),
             registration=()):
    """Return the results as markdown tables."""
    lines = [f'Device: {device_name}; measured float32 matmul rate {rate / 1e9:.0f} GFLOP/s.',
             '', '| network | scale | output | GFLOP | median ms | p95 ms | GFLOP/s | '
             'of matmul rate | peak memory MiB |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        lines.append(f"| {r['network']} | {r['scale']}x | {r['size']} | {r['gflop']:.1f} | "
                     f"{r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['achieved_gflops']:.0f} | "
                     f"{r['achieved_gflops'] * 1e9 / rate:.0%} | {r['peak_memory_mib']:.0f} |")
    if 'skipped' in pipeline:
        lines += ['', f"Node pipeline per frame ({pipeline['label']}): skipped: "
                  f"{pipeline['skipped']}"]
    elif pipeline['stages']:
        lines += ['', f"Node pipeline per frame ({pipeline['label']}), median ms:", '',
                  '| ' + ' | '.join(pipeline['stages']) + ' |',
                  '|---' * len(pipeline['stages']) + '|',
                  '| ' + ' | '.join(f'{v:.2f}' for v in pipeline['stages'].values()) + ' |']
    if variants:
        lines += ['', f"Acceleration switches ({pipeline['label']}), whole Predictor call; "
                  'error against float32 with numpy I/O:', '',
                  '| variant | median ms | p95 ms | mean error mm | p99 error mm | max error mm | '
                  'validity differs (pixels) |', '|---|---|---|---|---|---|---|']
        for v in variants:
            if 'skipped' in v:
                lines.append(f"| {v['variant']} | skipped: {v['skipped']} | | | | | |")
                continue
            lines.append(f"| {v['variant']} | {v['median_ms']:.1f} | {v['p95_ms']:.1f} | "
                         f"{v['mean_error_mm']:.4f} | {v['p99_error_mm']:.3f} | "
                         f"{v['max_error_mm']:.3f} | {v['invalid_differs']} |")
    if threads:
        lines += ['', 'CPU threads, whole Predictor call:', '', '| threads | median ms |',
                  '|---|---|']
        lines += [f"| {t['threads']} | {t['median_ms']:.1f} |" for t in threads]
    if registration:
        lines += ['', "Registration of a rig's depth onto the LR grid, and the alignment's edge "
                  'correlation of the registered depth with the colour (at 8x and 16x after '
                  "registering it onto a grid at a quarter of the output's resolution; numpy "
                  'and OpenCV, CPU):', '',
                  '| rig | depth | LR grid | threads | median ms | on one thread | alignment '
                  'ms, a frame it looks at | alignment ms per frame (every 5th) |',
                  '|---|---|---|---|---|---|---|---|']
        lines += [f"| {r['rig']} | {r['depth']} | {r['lr_grid']} | {r['threads']} | "
                  f"{r['median_ms']:.1f} | {_ms(r['one_thread_ms'])} | "
                  f"{r['alignment_ms']:.1f} | {r['alignment_per_frame_ms']:.1f} |"
                  for r in registration]
    if dds:
        lines += ['', 'The node under DDS (player and node as two processes, Fast DDS '
                  f'transports {ONE_COMPUTER_TRANSPORTS}), '
                  f"serving {os.path.basename(dds[0]['model']) or 'the default model'}:", '',
                  '| player Hz | s | pairs in Hz | outputs Hz | node stamp-to-publish p50 / p95 '
                  'ms | stamp-to-receive p50 / p95 ms | dropped pairs |',
                  '|---|---|---|---|---|---|---|']
        for d in dds:
            if not d.get('ok', True):  # a process stopped early: no measurement to show
                lines.append(f"| {d['rate_hz']:g} | failed: the player or the node stopped "
                             'early (its log is above) | | | | | |')
                continue
            lines.append(f"| {d['rate_hz']:g} | {d['seconds']:.0f} | {d['pairs_in_hz']:.1f} | "
                         f"{d['output_hz']:.2f} | {_ms(d['node_p50_ms'])} / "
                         f"{_ms(d['node_p95_ms'])} | {_ms(d['receive_p50_ms'])} / "
                         f"{_ms(d['receive_p95_ms'])} | {d['dropped_pairs']} |")
    return '\n'.join(lines)


def network_scales(text):
    """Return [(network, scale)] of 'NETWORK:SCALE,...' (an argparse type)."""
    cases = []
    for item in text.split(','):
        name, _, scale = item.strip().partition(':')
        if name not in MODELS or not scale.isdigit() or int(scale) not in MODELS[name].scales:
            known = '; '.join(f"{n} {', '.join(map(str, m.scales))}" for n, m in MODELS.items())
            raise argparse.ArgumentTypeError(
                f"comma-separated NETWORK:SCALE ({known}), not '{text}'")
        cases.append((name, int(scale)))
    return cases


def names_or(choices, *words):
    """
    Return an argparse type for comma-separated names of ``choices`` (console.one_of).

    '' (none) and each of ``words`` ('auto') pass as they are.
    """
    names = one_of(choices, many=True)

    def parse(text):
        return text if text in ('',) + words else names(text)
    parse.__name__ = names.__name__
    return parse


@interruptible('depth_sr_benchmark')
def main(argv=None):
    """Entry point of depth_sr_benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--size', default='640x480', type=image_size(1),
                        help='output WIDTHxHEIGHT')
    parser.add_argument('--models', default=DEFAULT_MODELS, type=network_scales,
                        help='comma-separated network:scale pairs')
    parser.add_argument('--model', default='', help='benchmark this model file instead')
    parser.add_argument('--device', default='auto', type=device_option,
                        help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--runs', type=number(int, low=1), default=10,
                        help='timed runs per measurement')
    parser.add_argument('--warmup', type=number(int, low=0), default=2,
                        help='untimed runs before each measurement')
    parser.add_argument('--threads', type=number(int, low=0), default=0,
                        help='CPU threads; 0 = default')
    parser.add_argument('--variants', default='auto',
                        type=names_or([*VARIANTS, *OPENVINO_VARIANTS], 'auto'),
                        help=f"comma-separated from {', '.join(VARIANTS)}, "
                             f"{', '.join(OPENVINO_VARIANTS)}; 'auto': "
                             f'{CPU_VARIANTS} on a CPU, {GPU_VARIANTS} on CUDA; '
                             "'' for none")
    parser.add_argument('--threads-sweep', default='', type=numbers(int, low=1),
                        help='comma-separated CPU thread counts to time (CPU only)')
    parser.add_argument('--dds-rates', default='', type=numbers(float, above=0),
                        help='comma-separated player rates in Hz for the node-under-DDS run')
    parser.add_argument('--dds-model', default='',
                        help='the model file the node serves in the DDS runs (default: --model; '
                             'e.g. a --precision mixed .onnx export, which runs on OpenVINO)')
    parser.add_argument('--dds-seconds', type=number(float, above=0), default=20.0,
                        help='how long the node runs under DDS at each rate')
    parser.add_argument('--registration', default='', type=names_or(RIGS),
                        help=f"comma-separated scene rigs ({', '.join(RIGS)}) whose "
                             "registration onto the LR grid to time at the model's scale")
    parser.add_argument('--domain-id', type=DOMAIN_ID, default=domain_id(60, 40),
                        help='ROS domain of the node-under-DDS run (default: ROS_DOMAIN_ID when '
                             'set, else one of 60-99)')
    parser.add_argument('--json', default='', help='also write the results here as JSON')
    parser.add_argument('--markdown', default='', help='also write the tables here')
    args = parser.parse_args(argv)
    problem = unwritable(args, ('json', 'markdown'), inputs=('model', 'dds_model'))
    if problem:
        print(f'depth_sr_benchmark: {problem}', file=sys.stderr)
        return 2
    if args.dds_rates:
        try:
            import depth_sr_ros.ros.watch  # noqa: F401 (rclpy and the messages the run needs)
        except ImportError as error:
            parser.error(f'--dds-rates runs the node, which needs ROS 2 ({error})')
    try:
        device = select_device(args.device)
    except (ValueError, RuntimeError) as error:
        parser.error(f'--device: {error}')
    if args.model:
        try:
            model, info = load_checkpoint(args.model, device)
        except CheckpointError as error:
            parser.error(f'--model: {error}')
        cases = [(info['arch'], info['arch_kwargs']['scale'], model)]
        arch_kwargs = info['arch_kwargs']
    else:
        cases = [(name, scale, None) for name, scale in args.models]
        arch_kwargs = {'scale': cases[0][1]}
    size = args.size
    for _, scale, _ in cases:
        if size[0] % scale or size[1] % scale:
            parser.error(f'--size: {size[0]}x{size[1]} is not a multiple of the scale {scale}')
    if args.threads:
        torch.set_num_threads(args.threads)
    pin_cuda_float32(device)
    device_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                   else f'CPU, {torch.get_num_threads()} threads')
    rate = matmul_rate(device)
    results = []
    for name, scale, model in cases:
        results.append(bench_model(name, scale, size, device, args.runs, args.warmup, model))
        print(f"{name} {scale}x: {results[-1]['median_ms']:.1f} ms", file=sys.stderr)
    name, scale, model = cases[0]
    predictor = Predictor(model or build_model(name, scale=scale), device=str(device))
    predictor.synchronize_stages()
    pipeline = {'label': f'{name} {scale}x, {size[0]}x{size[1]} player frame'}
    try:  # as a variant that cannot run: 'skipped' with the reason
        pipeline['stages'] = bench_pipeline(predictor, size, args.runs, args.warmup)
    except ImportError as error:
        pipeline['skipped'] = f'it needs ROS 2 ({error})'
    names = args.variants
    if names == 'auto':
        names = GPU_VARIANTS if device.type == 'cuda' else CPU_VARIANTS
    model = predictor.model.float()
    variants = bench_variants(model, scale, size, device, args.runs, args.warmup,
                              [n for n in names.split(',') if n], name,
                              arch_kwargs) if names else []
    threads = bench_threads(model, scale, size, args.runs, args.warmup, args.threads_sweep)
    registration = bench_registration(
        [r for r in args.registration.split(',') if r], scale, args.runs)
    dds = bench_dds(args.dds_rates, args.dds_seconds, args.dds_model or args.model, args.device,
                    args.domain_id)
    report = {'device': device_name, 'matmul_gflops': rate / 1e9, 'models': results,
              'pipeline': pipeline, 'variants': variants, 'threads': threads, 'dds': dds,
              'registration': registration,
              'torch': torch.__version__}
    text = markdown(results, pipeline, device_name, rate, variants, threads, dds, registration)
    print(text)
    if args.json:
        write_text_atomically(args.json, json.dumps(report, indent=1))
    if args.markdown:
        write_text_atomically(args.markdown, text + '\n')
    if not all(d.get('ok', True) for d in dds):
        print('depth_sr_benchmark: a DDS run failed (see its row)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
