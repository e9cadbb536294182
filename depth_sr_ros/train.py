"""
depth_sr_train: train AHMF or PAG-Net on RGB-D pairs; resumable, one plain loop.

    depth_sr_train --arch ahmf --scale 4 --data ../shared/data/middlebury30 --out runs/ahmf_x4

Writes into --out: state.pt (everything needed to resume, written atomically every
--save-every steps and at the end), log.csv (step, loss, learning rate, validation MAE) and
model.pt (the weights in the format the node loads). Running the same command again resumes
from state.pt, so several short runs (--time-budget) add up to one long one.
"""

import argparse
import csv
import dataclasses
import os
import sys
import tempfile
import time

from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.data.datasets import CropDataset, load_split
from depth_sr_ros.data.degradations import bicubic_downsample, crop_to_multiple
from depth_sr_ros.inference import select_device
from depth_sr_ros.metrics import mae
from depth_sr_ros.networks import build_model
from depth_sr_ros.preprocessing import (
    color_to_unit, denormalize_depth, depth_range, normalize_depth, PREPROCESSING,
    valid_depth_mask)
import numpy as np
import torch

# Paper hyper-parameters per network: loss, Adam betas, batch size.
PAPER_DEFAULTS = {
    'ahmf': {'loss': 'l1', 'betas': (0.9, 0.999), 'batch_size': 16},
    'pag_net': {'loss': 'l1+l2', 'betas': (0.9, 0.99), 'batch_size': 8},
}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the run's state and model)."""

    arch: str = 'ahmf'
    scale: int = 4
    data: str = ''
    out: str = 'runs/train'
    steps: int = 10000
    batch_size: int = 0  # 0: the paper's value for the architecture
    crop: int = 256  # HR crop side in pixels
    lr: float = 1e-4
    lr_halve_at: float = 0.8  # fraction of the steps after which the lr is halved
    loss: str = ''  # '' : the paper's loss for the architecture
    val_names: str = '13,27'  # validation pairs (comma separated), left out of training
    synthetic: float = 0.0  # share of training samples from synthetic scenes (data/synthetic.py)
    save_every: int = 200
    time_budget: float = 0.0  # seconds; 0 = no limit. The run saves and stops when exceeded.
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = 'auto'
    storage_dtype: str = 'float16'

    def resolved(self):
        """Return a copy with the paper defaults filled in."""
        paper = PAPER_DEFAULTS[self.arch]
        return dataclasses.replace(self, batch_size=self.batch_size or paper['batch_size'],
                                   loss=self.loss or paper['loss'])


def loss_fn(name, prediction, target):
    """Return the training loss on normalised depth: 'l1' or 'l1+l2' (their sum, PAG-Net)."""
    l1 = torch.nn.functional.l1_loss(prediction, target)
    if name == 'l1':
        return l1
    if name == 'l1+l2':
        return l1 + torch.nn.functional.mse_loss(prediction, target)
    raise ValueError(f"unknown loss {name!r}; use 'l1' or 'l1+l2'")


def atomic_torch_save(obj, path):
    """torch.save into a temporary file in the same folder, then rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@torch.no_grad()
def validate(model, pairs, scale, device):
    """Mean MAE in dataset units over whole images, with the papers' bicubic degradation."""
    model.eval()
    errors = []
    for pair in pairs:
        gt = crop_to_multiple(pair['depth'], scale)
        rgb = color_to_unit(crop_to_multiple(pair['rgb'], scale))
        low, high = depth_range(gt, valid_depth_mask(gt))
        lr = normalize_depth(bicubic_downsample(gt, scale), low, high)
        out = model(torch.from_numpy(lr)[None, None].to(device),
                    torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None].to(device))
        errors.append(mae(denormalize_depth(out[0, 0].cpu().numpy(), low, high), gt))
    model.train()
    return float(np.mean(errors)) if errors else float('nan')


def learning_rate(config, step):
    """Return the paper's learning rate: constant, halved once after lr_halve_at of the steps."""
    return config.lr * (0.5 if step >= config.lr_halve_at * config.steps else 1.0)


def train(config):
    """Run (or resume) training as described by ``config``; return the final state dict."""
    config = config.resolved()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = select_device(config.device)
    os.makedirs(config.out, exist_ok=True)
    val_names = tuple(n for n in config.val_names.split(',') if n)
    train_pairs, val_pairs = load_split(config.data, val_names)
    dataset = CropDataset(train_pairs, config.scale, config.crop,
                          synthetic_fraction=config.synthetic)
    arch_kwargs = {'scale': config.scale}
    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(config.arch, **arch_kwargs).to(device)
    betas = PAPER_DEFAULTS[config.arch]['betas']
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=betas, eps=1e-8)
    rng = np.random.default_rng(config.seed)  # the samples
    state_path = os.path.join(config.out, 'state.pt')
    step, elapsed = 0, 0.0
    if os.path.exists(state_path):
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        rng.bit_generator.state = state['rng']
        torch.set_rng_state(state['torch_rng'])
        step, elapsed = state['step'], state['elapsed']
        print(f'resumed from {state_path} at step {step}', flush=True)

    def save_state():
        atomic_torch_save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                           'rng': rng.bit_generator.state, 'torch_rng': torch.get_rng_state(),
                           'step': step, 'elapsed': elapsed,
                           'config': dataclasses.asdict(config)}, state_path)

    log_path = os.path.join(config.out, 'log.csv')
    new_log = not os.path.exists(log_path)
    log_file = open(log_path, 'a', newline='')
    log = csv.writer(log_file)
    if new_log:
        log.writerow(['step', 'loss', 'lr', 'val_mae', 'elapsed_s'])
    started = time.monotonic()
    segment_start = elapsed
    running = []
    model.train()
    try:
        while step < config.steps:
            if config.time_budget and elapsed - segment_start > config.time_budget:
                print(f'time budget of {config.time_budget:.0f} s used; stopping at step '
                      f'{step} (run the same command again to resume)', flush=True)
                break
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group['lr'] = lr
            batch = dataset.batch(rng, config.batch_size)
            prediction = model(torch.from_numpy(batch['depth_lr']).to(device),
                               torch.from_numpy(batch['rgb']).to(device))
            loss = loss_fn(config.loss, prediction, torch.from_numpy(batch['depth_hr']).to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f'loss is {loss.item()} at step {step}; stopping '
                                         'without saving (last good state is kept)')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running.append(loss.item())
            elapsed = segment_start + time.monotonic() - started
            if step % config.save_every == 0 or step == config.steps:
                val = validate(model, val_pairs, config.scale, device)
                mean_loss = float(np.mean(running))
                running = []
                log.writerow([step, f'{mean_loss:.6f}', lr, f'{val:.4f}', f'{elapsed:.1f}'])
                log_file.flush()
                save_state()
                rate = step / max(elapsed, 1e-9)
                print(f'step {step}/{config.steps} loss {mean_loss:.5f} val MAE {val:.3f} '
                      f'lr {lr:.1e} {rate:.2f} steps/s '
                      f'eta {(config.steps - step) / rate / 60:.1f} min', flush=True)
    finally:
        log_file.close()
    save_state()
    training = {
        'data': os.path.abspath(config.data), 'train_pairs': [p['name'] for p in train_pairs],
        'val_pairs': list(val_names), 'degradation': 'bicubic (cv2.INTER_CUBIC, no antialias)',
        'steps': step, 'elapsed_s': round(elapsed, 1), 'device': str(device),
        'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda'
                        else 'cpu'),
        'config': dataclasses.asdict(config),
        'val_mae': validate(model, val_pairs, config.scale, device),
    }
    save_checkpoint(os.path.join(config.out, 'model.pt'), model, config.arch, arch_kwargs,
                    PREPROCESSING, training, storage_dtype=config.storage_dtype)
    print(f"wrote {os.path.join(config.out, 'model.pt')} (step {step})", flush=True)
    return training


def parse_args(argv=None):
    """Build a TrainConfig from the command line (one option per field)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument('--' + field.name.replace('_', '-'), type=field.type,
                            default=field.default)
    args = parser.parse_args(argv)
    if not args.data:
        parser.error('--data DIR is required (a folder with depth/ and rgb/)')
    if args.arch not in PAPER_DEFAULTS:
        parser.error(f'--arch must be one of {sorted(PAPER_DEFAULTS)}')
    return TrainConfig(**vars(args))


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
