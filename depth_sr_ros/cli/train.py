"""
depth_sr_train: train AHMF or PAG-Net on RGB-D pairs; resumable, one plain loop.

    depth_sr_train --arch ahmf --scale 4 --data ../shared/data/middlebury30 --out runs/ahmf_x4

Several processes: torchrun --nproc_per_node N -m depth_sr_ros.cli.train ... (DDP; gloo on CPU).

Writes into --out: state.pt (everything needed to resume, written atomically every
--save-every steps and at the end), log.csv (step, loss, learning rate, validation MAE and
RMSE) and model.pt (the weights in the format the node loads; with --ema, their moving
average). Running the same command again resumes from state.pt, so several short runs
(--time-budget) add up to one long one.
"""

import argparse
import copy
import csv
import dataclasses
import io
import math
import os
import sys
import time

import cv2
from depth_sr_ros.checkpoint import (
    atomic_save, lerp_weights_, load_checkpoint, read_checkpoint, save_checkpoint, STORAGE_DTYPES)
from depth_sr_ros.console import interruptible, number, one_of
from depth_sr_ros.data.datasets import CropDataset, load_split, prefetched_batches
from depth_sr_ros.data.degradations import DOWNSAMPLERS
from depth_sr_ros.evaluation import evaluate_network, NOISES
from depth_sr_ros.files import missing_folder, refuse_overlap, write_text_atomically
from depth_sr_ros.inference import device_option, native_bfloat16, select_device
from depth_sr_ros.metrics import edge_surfaces, near_edges
from depth_sr_ros.networks import build_model, MODELS
from depth_sr_ros.preprocessing import PREPROCESSING
from depth_sr_ros.selection import VALIDATION_NAMES
from depth_sr_ros.viz import write_image
import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

# Paper hyper-parameters per network: loss, Adam betas, batch size.
PAPER_DEFAULTS = {
    'ahmf': {'loss': 'l1', 'betas': (0.9, 0.999), 'batch_size': 16},
    'pag_net': {'loss': 'l1+l2', 'betas': (0.9, 0.99), 'batch_size': 8},
}


def _option(default, text, parse=None):
    """Return a TrainConfig field: its default, its help and its argparse type (None: its own)."""
    return dataclasses.field(default=default, metadata={'help': text, 'parse': parse})


SHARE = number(float, low=0, high=1)  # the type of an option that is a share of the samples
PRECISIONS = ('auto', 'float32', 'bfloat16')

# The losses loss_fn knows. 'l1+edges': L1 with the pixels near the target's depth edges
# (metrics.between_surfaces' band) weighed EDGE_LOSS_WEIGHT times more. 'l1+surfaces': L1
# plus, on those pixels, --surface-weight times the distance to the nearer of the two
# surfaces there (surface_distance).
LOSSES = ('l1', 'l1+l2', 'l2', 'l1+edges', 'l1+surfaces')
EDGE_LOSS_WEIGHT = 4.0


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the run's state and model)."""

    arch: str = _option('ahmf', "network: 'ahmf' or 'pag_net'", one_of(PAPER_DEFAULTS))
    scale: int = _option(4, 'upsampling factor (AHMF 4, 8 or 16; PAG-Net 2 to 16)')
    data: str = _option('', 'folder with depth/ and rgb/ pairs, e.g. ../shared/data/middlebury30 '
                            '(required)')
    out: str = _option('runs/train', 'run folder: state.pt, log.csv, model.pt; the same command '
                                     'again resumes from it')
    steps: int = _option(10000, 'optimiser steps of the whole run (0: validate and write the '
                                'starting weights)', number(int, low=0))
    batch_size: int = _option(0, "samples per step; 0: the paper's (AHMF 16, PAG-Net 8)",
                              number(int, low=0))
    crop: int = _option(256, 'side of the square HR training crop, pixels', number(int, low=1))
    lr: float = _option(1e-4, 'learning rate (Adam)', number(float, above=0))
    lr_halve_at: float = _option(0.8, 'share of the steps after which the learning rate halves',
                                 SHARE)
    loss: str = _option('', "'l1', 'l2', 'l1+l2', 'l1+edges' (L1, the pixels near depth "
                        "edges weighed 5x) or 'l1+surfaces' (L1 plus, near depth edges, the "
                        "distance to the nearer surface); '': the paper's (AHMF l1, PAG-Net "
                        'l1+l2)',
                        one_of(('',) + LOSSES))
    surface_weight: float = _option(1.0, "weight of 'l1+surfaces' distance to the nearer "
                                         'surface against the L1 term', number(float, low=0))
    val_names: str = _option(','.join(VALIDATION_NAMES),
                             'comma-separated validation pairs, left out of training (the '
                             'pairs model selection judges on: selection.VALIDATION_NAMES)')
    val_noise: str = _option('', "what validation adds to the LR input: '' (clean), 'gaussian', "
                                 "'sensor', 'rig' or another of evaluation.NOISES (as "
                                 'depth_sr_eval --noise / --sensor / --rig / ...), e.g. '
                                 "'rig' for a run that learns simulated rigs, 'metric' for one "
                                 'that learns metric depth',
                             one_of(NOISES))
    synthetic: float = _option(0.0, 'share of training samples from synthetic scenes '
                                    '(data/synthetic.py), 0 to 1', SHARE)
    save_every: int = _option(200, 'steps between validations and saves of state.pt',
                              number(int, low=1))
    time_budget: float = _option(0.0, 'seconds; the run saves and stops when exceeded (0: no '
                                      'limit)', number(float, low=0))
    seed: int = _option(0, 'random seed of the crops, augmentation and initialisation',
                        number(int, low=0))
    threads: int = _option(0, "torch CPU threads; 0: torch's default", number(int, low=0))
    workers: int = _option(2, 'threads that make the next batches while the network trains',
                           number(int, low=0))
    device: str = _option('auto', "'auto' (cuda when available), 'cuda', 'cuda:N' or 'cpu'",
                          device_option)
    storage_dtype: str = _option('float16', "weights' storage in model.pt: 'float16' or "
                                            "'float32'", one_of(STORAGE_DTYPES))
    precision: str = _option('auto', "'auto': bfloat16 autocast where the hardware runs it "
                                     'natively (CPUs with AMX or AVX512-BF16, CUDA GPUs from '
                                     "Ampere on), else float32; or 'float32', 'bfloat16'. "
                                     'Weights, optimiser state, the global skip and the loss '
                                     'stay float32 either way', one_of(PRECISIONS))
    init: str = _option('', 'model file to start from (fine-tune with a fresh optimiser); '
                            'PAG-Net also grows from a smaller scale')
    downsampling: str = _option('bicubic', 'comma-separated kernels, one drawn per sample: '
                                           + ', '.join(sorted(DOWNSAMPLERS)),
                                one_of(sorted(DOWNSAMPLERS), many=True))
    sensor: float = _option(0.0, 'share of the samples not drawn for --rig whose LR depth is '
                                 "degraded as a depth camera's (noise growing with depth, "
                                 'flying pixels, holes: data.degradations.sensor_degrade), '
                                 'holes filled as at run time, 0 to 1', SHARE)
    rig: float = _option(0.0, 'share of samples whose LR depth is made as the node makes it from '
                              'a simulated depth camera beside the colour camera (data.rig: its '
                              'own resolution, lens, baseline, faults, a calibration error), '
                              '0 to 1', SHARE)
    metric: float = _option(0.0, 'share of samples shown in metres as a depth camera gives '
                                 "them (large = far, the inverse of the pairs' disparity: "
                                 'data.rig.metric_view), normalised as the node normalises '
                                 'them, 0 to 1', SHARE)
    rig_offset: float = _option(0.0, 'share of the rig samples whose calibration is a real '
                                     "rig's before alignment (depth 1 to 2.5 depth pixels off), "
                                     "aligned to the crop's colour as the node aligns: the "
                                     'network learns from the residual the alignment leaves, '
                                     '0 to 1', SHARE)
    rig_registered: float = _option(0.0, 'share of the rig samples registered at the colour '
                                         "camera's full size first, as a driver's aligned "
                                         "depth is, and reduced by the node's registered "
                                         'route (the rest take its raw route), 0 to 1', SHARE)
    ema: float = _option(0.0, 'decay of a moving average of the weights, validated and written '
                              'to model.pt (0: off); it ramps up as (1 + n) / (10 + n) over the '
                              'first updates n, so until n reaches about 9 / (1 - decay) it '
                              'averages the last n / 9 steps or so',
                         number(float, low=0, below=1))

    def check(self):
        """
        Raise ValueError for a setting the command line refuses, with the same message.

        Each option's argparse type reads its value back from text; then the settings that
        depend on each other; then where the run folder would go. Nothing here reads the data
        or a file, or starts the device.
        """
        for field in dataclasses.fields(self):
            parse = field.metadata['parse']
            try:
                if parse:
                    parse(str(getattr(self, field.name)))
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"argument --{field.name.replace('_', '-')}: {error}") from None
        if not self.data:
            raise ValueError('--data DIR is required (a folder with depth/ and rgb/)')
        problem = missing_folder('--data', self.data)
        if problem:
            raise ValueError(problem)
        scales = MODELS[self.arch].scales
        if self.scale not in scales:
            raise ValueError(f"--scale: {self.arch} takes {', '.join(map(str, scales))}, "
                             f'not {self.scale}')
        if self.crop < self.scale:
            raise ValueError(f'--crop: at least the scale ({self.scale}), not {self.crop}')
        for share in ('rig_offset', 'rig_registered'):
            if getattr(self, share) and not self.rig:
                raise ValueError(f"--{share.replace('_', '-')} is a share of the rig samples: "
                                 'give --rig too')
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise ValueError(f"--out '{self.out}' is a file; the run folder must be a folder")
        try:  # a run folder in the data would be read as a pair, or hold the pairs
            refuse_overlap(self.out, [self.data])
        except ValueError as error:
            raise ValueError(f'--out: {error}') from None

    def resolved(self):
        """Return a copy with the paper defaults filled in."""
        paper = PAPER_DEFAULTS[self.arch]
        return dataclasses.replace(self, batch_size=self.batch_size or paper['batch_size'],
                                   loss=self.loss or paper['loss'])


def training_precision(requested, device):
    """Return 'bfloat16' or 'float32' for a --precision of PRECISIONS ('auto': by hardware)."""
    if requested != 'auto':
        return requested
    return 'bfloat16' if native_bfloat16(device) else 'float32'


def edge_band(target):
    """
    Return a 0/1 mask of the pixels near depth edges of each (N, 1, H, W) target.

    The band of metrics.between_surfaces (metrics.near_edges): targets are normalised by their
    whole image's range, so a step counts when it exceeds EDGE_MIN_JUMP; NaN (no ground
    truth) makes no step.
    """
    bands = [near_edges(sample, 1.0) for sample in target[:, 0].detach().float().cpu().numpy()]
    return torch.from_numpy(np.stack(bands)[:, None].astype(np.float32)).to(target.device)


def surface_distance(prediction, target):
    """
    Return each pixel's distance to the nearer of the two surfaces around it, and where it counts.

    The pixels and surfaces of metrics.between_surfaces (metrics.edge_surfaces), targets
    normalised by their whole image's range as in edge_band. A prediction on either surface
    is 0 away; one between them is up to half the jump away: the loss that pulls floating
    pixels onto a surface, and leaves L1 to say which.
    """
    samples = target[:, 0].detach().float().cpu().numpy()
    found = [edge_surfaces(sample, 1.0, np.isfinite(sample)) for sample in samples]
    counts, near, far = (torch.from_numpy(np.stack(part)[:, None]).to(target.device)
                         for part in zip(*found))
    near = torch.where(counts, near, 0.0).to(prediction.dtype)
    far = torch.where(counts, far, 0.0).to(prediction.dtype)
    distance = torch.minimum((prediction - near).abs(), (far - prediction).abs())
    return torch.where(counts, distance, 0.0), counts


def loss_fn(name, prediction, target, surface_weight=1.0):
    """
    Return the training loss on normalised depth: one of LOSSES.

    'l1+l2' is their sum (PAG-Net). L2 weighs large errors more: what RMSE measures, and where
    an L1-trained network's errors sit at 16x (a depth edge put where the colour has one).
    'l1+edges' weighs the pixels near depth edges EDGE_LOSS_WEIGHT times more, where outputs
    float between two surfaces. 'l1+surfaces' adds ``surface_weight`` times their distance to
    the nearer surface (surface_distance), averaged over all pixels as L1 is. Target pixels
    without ground truth (NaN) are left out.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")
    valid = torch.isfinite(target)
    weight = None
    if name == 'l1+surfaces' and valid.any():
        distance, _ = surface_distance(prediction, target)
        plain = loss_fn('l1', prediction, target)
        return plain + surface_weight * distance[valid].mean()
    if name == 'l1+edges':
        weight = 1.0 + EDGE_LOSS_WEIGHT * edge_band(target)
    if not valid.any():  # a batch of holes only: nothing to learn, no NaN gradient
        return (prediction * 0).sum()
    if not valid.all():  # holes in the ground truth: the pixels with a value only
        prediction, target = prediction[valid], target[valid]
        weight = None if weight is None else weight[valid]
    error = prediction - target
    if name == 'l1+edges':
        return (weight * error.abs()).mean()
    if name == 'l1':
        return error.abs().mean()
    if name == 'l2':
        return error.square().mean()
    return error.abs().mean() + error.square().mean()  # 'l1+l2'


def validate(model, pairs, scale, device, noise=''):
    """
    Return {'mae', 'rmse'} in dataset units over whole images, as depth_sr_eval measures them.

    The papers' bicubic degradation with ``noise`` (evaluation.NOISES, seeded per image), and
    the Predictor's own pre- and post-processing, so that validation sees what inference does.
    """
    if not pairs:
        return {'mae': float('nan'), 'rmse': float('nan')}
    errors = evaluate_network(model, pairs, scale, noise=noise, device=device)
    model.train()
    return errors


LOG_COLUMNS = ['step', 'loss', 'lr', 'val_mae', 'val_rmse', 'elapsed_s']


def open_log(path, step=0):
    """
    Open log.csv for appending at ``step``; return (file, csv.DictWriter).

    A resumed run keeps the columns its log began with (logs written before val_rmse existed
    go on without it), so that every row of a file matches its header. Rows past ``step``
    (written just before a stop that came before state.pt was saved) are dropped: the resumed
    run writes them again.
    """
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    columns = LOG_COLUMNS
    if not new:
        with open(path, newline='') as f:
            whole = f.read()
        rows = list(csv.reader(io.StringIO(whole)))
        columns = rows[0]
        if 'step' in columns:
            at = columns.index('step')

            def logged_by_now(row):  # a cut-off last line (no step) goes too
                try:
                    return int(row[at]) <= step and len(row) == len(columns)
                except (IndexError, ValueError):
                    return False
            kept = [columns] + [row for row in rows[1:] if logged_by_now(row)]
            if len(kept) < len(rows) or not whole.endswith('\n'):
                text = io.StringIO()
                csv.writer(text).writerows(kept)
                write_text_atomically(path, text.getvalue())
    log_file = open(path, 'a', newline='')
    log = csv.DictWriter(log_file, columns, extrasaction='ignore')
    if new:
        log.writeheader()
    return log_file, log


def plot_log(log_path, png_path, size=(480, 320)):
    """Draw the training loss (log scale) and the validation errors against the step to a PNG."""
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        return False
    steps = np.array([float(r['step']) for r in rows])
    panels = [('training loss (log10)', np.log10([float(r['loss']) for r in rows])),
              ('validation MAE', np.array([float(r['val_mae']) for r in rows]))]
    if 'val_rmse' in rows[0]:
        panels.append(('validation RMSE', np.array([float(r['val_rmse']) for r in rows])))
    w, h = size
    images = []
    for title, values in panels:
        image = np.full((h, w, 3), 255, np.uint8)
        finite = np.isfinite(values)
        if finite.sum() >= 2:
            lo, hi = values[finite].min(), values[finite].max()
            hi = hi if hi > lo else lo + 1e-6
            x = 50 + (steps - steps.min()) / max(steps.max() - steps.min(), 1) * (w - 70)
            y = h - 40 - (values - lo) / (hi - lo) * (h - 80)
            points = np.stack([x, y], 1)[finite].astype(np.int32)
            cv2.polylines(image, [points], False, (200, 80, 0), 2, cv2.LINE_AA)
            for text, pos in ((f'{hi:.4g}', (4, 44)), (f'{lo:.4g}', (4, h - 40))):
                cv2.putText(image, text, pos, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.rectangle(image, (50, 40), (w - 20, h - 40), (0, 0, 0), 1)
        cv2.putText(image, title, (50, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        cv2.putText(image, f'step {int(steps.min())} - {int(steps.max())}', (50, h - 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        images.append(image)
    return write_image(png_path, np.hstack(images))


# Settings a resumed run may change without changing what it learns from: the schedule, the
# time, the machine and the logging.
SCHEDULE_SETTINGS = ('steps', 'lr', 'lr_halve_at', 'save_every', 'time_budget', 'threads',
                     'workers', 'device', 'precision', 'storage_dtype', 'out', 'init', 'ema',
                     'val_noise')


def check_resumed_pairs(saved, config):
    """
    Raise ValueError when a resume names other data or validation pairs than its run began with.

    The model file records the pairs of the last segment only: pairs validated on now but
    trained on before (or data read before from another folder) would pass for unseen, and
    the selection rule would judge the file on what it learnt.
    """
    def same(name, a, b):
        if name == 'data':  # however spelled
            return os.path.realpath(a) == os.path.realpath(b)
        return {n.strip() for n in a.split(',') if n.strip()} == {
            n.strip() for n in b.split(',') if n.strip()}
    for name, option in (('data', '--data'), ('val_names', '--val-names')):
        if name in saved and not same(name, saved[name], getattr(config, name)):
            raise ValueError(f'{option} {getattr(config, name)!r}: the run in {config.out} '
                             f'began with {saved[name]!r}, and a resume keeps it (the model '
                             'file records one set of pairs); give another --out')


def changed_data_settings(saved, config):
    """Return 'name old -> new, ...' for the settings a resume changes beyond the schedule."""
    now = dataclasses.asdict(config)
    return ', '.join(f'{name} {saved[name]!r} -> {value!r}' for name, value in now.items()
                     if name not in SCHEDULE_SETTINGS and name in saved
                     and saved[name] != value)


def degradation_text(config):
    """Return the model card's words for how a run made its LR inputs."""
    text = ''
    if config.rig:
        text = f'simulated rig on {config.rig:.0%} of samples'
        if config.rig_offset:
            text += f' ({config.rig_offset:.0%} of them off, then aligned)'
        if config.rig_registered:
            text += f' ({config.rig_registered:.0%} of them registered at the colour size)'
        text += ', the rest '
    text += config.downsampling
    if config.sensor:
        text += f" + sensor on {config.sensor:.0%} of {'those' if config.rig else 'samples'}"
    if config.metric:
        text += f'; {config.metric:.0%} of samples in metres'
    return text


def ema_decay(decay, updates):
    """
    Return the moving average's decay at its ``updates``-th update.

    Ramps from 0.1 towards ``decay`` ((1 + n) / (10 + n)), so that the starting weights fade
    within the first steps instead of weighing on a short fine-tune for 1 / (1 - decay) steps.
    """
    return min(decay, (1 + updates) / (10 + updates))


def learning_rate(config, step):
    """Return the paper's learning rate: constant, halved once after lr_halve_at of the steps."""
    return config.lr * (0.5 if step >= config.lr_halve_at * config.steps else 1.0)


def halving(config):
    """Return, in words, after which logged step the learning rate halves (learning_rate)."""
    full = math.ceil(config.lr_halve_at * config.steps)  # updates at the full rate
    return f'halves after step {full}' if full < config.steps else 'does not halve'


def _distributed(device_request):
    """Join the torchrun process group if there is one; return (rank, world, device)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        return 0, 1, select_device(device_request)
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = select_device(device_request)
    if device.type == 'cuda':
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return dist.get_rank(), world, device


def _all_ranks(value, world, op='mean'):
    """Return ``value`` (a float) reduced over the ranks: mean or max."""
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == 'max' else dist.ReduceOp.SUM)
    return tensor.item() / (world if op == 'mean' else 1)


def train(config):
    """
    Run (or resume) training as described by ``config``; return the training facts.

    Under torchrun (WORLD_SIZE > 1) every process trains a DistributedDataParallel copy on
    batch_size / WORLD_SIZE samples per step (gloo on CPU, NCCL on CUDA); rank 0 validates,
    logs and saves. The samples of a step come from a generator seeded with (seed, rank,
    step), so a resumed run draws exactly the samples an uninterrupted one would.
    """
    config.check()  # before any work: a bad setting leaves no run folder
    config = config.resolved()
    if config.threads:
        torch.set_num_threads(config.threads)
    rank, world, device = _distributed(config.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # the crops have one fixed size: autotune once
    precision = training_precision(config.precision, device)
    if config.batch_size % world:
        raise ValueError(f'batch size {config.batch_size} does not divide over {world} '
                         'processes')
    lead = rank == 0
    val_names = tuple(n for n in config.val_names.split(',') if n)
    train_pairs, val_pairs = load_split(config.data, val_names)
    dataset = CropDataset(train_pairs, config.scale, config.crop,
                          synthetic_fraction=config.synthetic,
                          downsamplers=tuple(config.downsampling.split(',')),
                          sensor=config.sensor, rig=config.rig, rig_offset=config.rig_offset,
                          rig_registered=config.rig_registered, metric=config.metric)
    arch_kwargs = {'scale': config.scale}
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    net = build_model(config.arch, **arch_kwargs)
    init_training = None  # the starting file's record, kept in state.pt for the model file
    state_path = os.path.join(config.out, 'state.pt')
    resuming = os.path.exists(state_path)
    if config.init and not resuming:  # a resume needs no --init (its file may have changed)
        start, info = load_checkpoint(config.init)
        init_training = info['training']
        grows = (info['arch'] == config.arch and hasattr(net, 'grow_from')
                 and info['arch_kwargs'].get('scale', 0) < config.scale)
        if grows:
            net.grow_from(start)
        elif (info['arch'], info['arch_kwargs']) != (config.arch, arch_kwargs):
            raise ValueError(f"--init {config.init} holds {info['arch']} "
                             f"{info['arch_kwargs']}, not {config.arch} {arch_kwargs}")
        else:
            net.load_state_dict(start.state_dict())
    net = net.to(device)
    betas = PAPER_DEFAULTS[config.arch]['betas']
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=betas, eps=1e-8)
    os.makedirs(config.out, exist_ok=True)  # the data, kernels and --init have loaded
    step, elapsed = 0, 0.0
    state = {}
    if resuming:
        state = torch.load(state_path, map_location=device, weights_only=False)
        began = state.get('config', {})
        if (began.get('arch', config.arch), began.get('scale', config.scale)) != (
                config.arch, config.scale):
            raise ValueError(f"{state_path} is a run of {began['arch']} {began['scale']}x, not "
                             f'{config.arch} {config.scale}x: give another --out')
        check_resumed_pairs(began, config)
        net.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        # The record the run began from stays the one it names (a state from before the
        # record was kept: the --init file's, if given).
        init_training = state.get('init_training')
        if init_training is None and 'init_training' not in state and config.init:
            init_training = read_checkpoint(config.init)['training']
        step, elapsed = state['step'], state['elapsed']
        if lead:
            print(f'resumed from {state_path} at step {step}', flush=True)
            changed = changed_data_settings(began, config)
            if changed:
                print(f'resuming with other data settings than the run began with: {changed} '
                      '(the model file records only the last)', flush=True)
            saved = dataclasses.replace(config, **{k: began[k] for k in (
                'steps', 'lr_halve_at') if k in began})
            if halving(saved) != halving(config):
                print(f'--steps {config.steps}, --lr-halve-at {config.lr_halve_at:g}: the '
                      f'learning rate {halving(config)} ({halving(saved)} as last saved)',
                      flush=True)
    elif config.init and lead:
        print(f'starting from the weights of {config.init}'
              + (f" ({info['arch_kwargs']['scale']}x, grown to {config.scale}x)"
                 if grows else ''), flush=True)
    average, averaged = None, 0  # the moving average of the weights and its update count
    if config.ema and lead:  # the other ranks hold the same weights and never save
        average = copy.deepcopy(net)
        if 'ema' in state:
            average.load_state_dict(state['ema'])
            averaged = state['ema_updates']
        elif step:
            print(f'the moving average of the weights starts at step {step}, from the '
                  'resumed weights', flush=True)
    elif 'ema' in state and lead:
        print('this run kept a moving average of the weights; without --ema it is dropped and '
              'model.pt gets the raw weights', flush=True)
    kept = net if average is None else average  # the weights validated and written
    if lead:
        print(f'training in {precision} on {device}', flush=True)
    model = net if world == 1 else DistributedDataParallel(
        net, device_ids=[device.index] if device.type == 'cuda' else None)

    def check(weights):
        return validate(weights, val_pairs, config.scale, device, config.val_noise)

    def save_state():
        extra = {} if average is None else {'ema': average.state_dict(), 'ema_updates': averaged}
        atomic_save({'model': net.state_dict(), 'optimizer': optimizer.state_dict(),
                     'step': step, 'elapsed': elapsed, 'config': dataclasses.asdict(config),
                     'running': running, 'init_training': init_training, **extra},
                    state_path)

    log_path = os.path.join(config.out, 'log.csv')
    log_file = None
    if lead:
        log_file, log = open_log(log_path, step)
    started = time.monotonic()
    segment_start = elapsed
    running = list(state.get('running', []))  # the losses since the last log row
    model.train()
    batches = prefetched_batches(
        dataset, ([config.seed, rank, s] for s in range(step, config.steps)),
        config.batch_size // world, config.workers)
    try:
        while step < config.steps:
            over = config.time_budget and elapsed - segment_start > config.time_budget
            if _all_ranks(float(bool(over)), world, 'max'):
                if lead:
                    print(f'time budget of {config.time_budget:.0f} s used; stopping at step '
                          f'{step} (run the same command again to resume)', flush=True)
                break
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group['lr'] = lr
            batch = next(batches)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=precision == 'bfloat16'):
                prediction = model(torch.from_numpy(batch['depth_lr']).to(device),
                                   torch.from_numpy(batch['rgb']).to(device))
            # The networks add their body to a float32 bicubic skip; the loss is float32 too.
            loss = loss_fn(config.loss, prediction.float(),
                           torch.from_numpy(batch['depth_hr']).to(device), config.surface_weight)
            loss_value = _all_ranks(loss.item(), world)
            if not np.isfinite(loss_value):
                raise FloatingPointError(f'loss is {loss_value} at step {step}; stopping '
                                         'without saving (last good state is kept)')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            finite = torch.stack([torch.isfinite(p.grad).all() for p in net.parameters()
                                  if p.grad is not None])
            if not bool(finite.all()):  # a finite loss can still give them; one sync
                raise FloatingPointError(f'gradients are not finite at step {step}; stopping '
                                         'without saving (last good state is kept)')
            optimizer.step()
            if average is not None:
                lerp_weights_(average, net.state_dict(), 1.0 - ema_decay(config.ema, averaged))
                averaged += 1
            step += 1
            running.append(loss_value)
            elapsed = segment_start + time.monotonic() - started
            if lead and (step % config.save_every == 0 or step == config.steps):
                val = check(kept)
                raw = ('' if average is None else
                       ' (raw weights {mae:.3f} / {rmse:.3f})'.format(**check(net)))
                mean_loss = float(np.mean(running))
                running = []
                log.writerow({'step': step, 'loss': f'{mean_loss:.6f}', 'lr': lr,
                              'val_mae': f"{val['mae']:.4f}", 'val_rmse': f"{val['rmse']:.4f}",
                              'elapsed_s': f'{elapsed:.1f}'})
                log_file.flush()
                save_state()
                rate = step / max(elapsed, 1e-9)
                print(f'step {step}/{config.steps} loss {mean_loss:.5f} '
                      f"val MAE / RMSE {val['mae']:.3f} / {val['rmse']:.3f}{raw} "
                      f'lr {lr:.1e} {rate:.2f} steps/s '
                      f'eta {(config.steps - step) / rate / 60:.1f} min', flush=True)
    finally:
        batches.close()
        if log_file is not None:
            log_file.close()
        if world > 1:
            dist.destroy_process_group()
    if not lead:
        return None
    save_state()
    plot_log(log_path, os.path.join(config.out, 'loss.png'))
    training = {
        'data': os.path.abspath(config.data), 'train_pairs': [p['name'] for p in train_pairs],
        'val_pairs': list(val_names), 'synthetic_fraction': config.synthetic,
        'degradation': degradation_text(config),
        'precision': precision,
        'steps': step, 'elapsed_s': round(elapsed, 1), 'processes': world,
        'device': str(device),
        'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda'
                        else 'cpu'),
        'config': dataclasses.asdict(config),
    }
    if init_training is not None:  # the starting file's record: steps, data, pairs (as a blend)
        training['init_training'] = init_training
    training.update({'val_' + key: value for key, value in check(kept).items()})
    save_checkpoint(os.path.join(config.out, 'model.pt'), kept, config.arch, arch_kwargs,
                    PREPROCESSING, training, storage_dtype=config.storage_dtype)
    print(f"wrote {os.path.join(config.out, 'model.pt')} (step {step})", flush=True)
    return training


def parse_args(argv=None):
    """Build a TrainConfig from the command line (one option per field)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument('--' + field.name.replace('_', '-'),
                            type=field.metadata['parse'] or field.type,
                            default=field.default,
                            help=f"{field.metadata['help']} (default: {field.default!r})")
    config = TrainConfig(**vars(parser.parse_args(argv)))
    try:
        config.check()
    except ValueError as error:
        parser.error(str(error))
    return config


@interruptible('depth_sr_train', 'the same command resumes from the last save of state.pt '
               '(every --save-every steps)')
def main(argv=None):
    """Entry point of depth_sr_train."""
    try:
        train(parse_args(argv))
    except (FloatingPointError, FileNotFoundError, ValueError) as error:
        print(f'depth_sr_train: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
