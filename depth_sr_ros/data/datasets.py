"""
Training samples: random HR crops of RGB-D pairs, augmented and degraded.

Each sample is a dict of named float32 arrays (channel first, as the networks take them):
'depth_lr' (1, c/s, c/s), 'rgb' (3, c, c) and 'depth_hr' (1, c, c), with depth normalised by
the whole image's min-max range (as the predictor does at run time) and RGB in [0, 1].
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor

from depth_sr_ros.data.degradations import crop_to_multiple, DOWNSAMPLERS, sensor_degrade
from depth_sr_ros.data.middlebury import list_pairs, load_pair
from depth_sr_ros.data.rig import draw_distances, metric_view, simulate_rig
from depth_sr_ros.data.synthetic import synthetic_pair
from depth_sr_ros.preprocessing import (
    color_to_unit, depth_range, fill_missing, normalize_depth, valid_depth_mask)
import numpy as np

# The six Middlebury images of AHMF's Table I (data README): never used for training.
MIDDLEBURY_TEST = ('02', '06', '14', '18', '21', '24')
# The same scenes by name, as the full-size set (middlebury_full) names its pairs.
MIDDLEBURY_TEST_SCENES = ('art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer')


def augment(arrays, rng):
    """Apply one random flip / 90-degree rotation (8 cases) to every (H, W, ...) array."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(0, 1))
        out.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
    return out


class CropDataset:
    """Random crops of in-memory RGB-D pairs; index with an explicit numpy Generator."""

    def __init__(self, pairs, scale, crop_size, augment_samples=True, synthetic_fraction=0.0,
                 downsamplers=('bicubic',), sensor=0.0, rig=0.0, rig_offset=0.0, metric=0.0,
                 rig_registered=0.0):
        """
        Build the dataset.

        :param pairs: list of dicts from middlebury.load_pair ('depth' in any unit, 'rgb' uint8).
        :param scale: upsampling factor; crops are multiples of it.
        :param crop_size: side of the square HR crop (clipped to the smallest image).
        :param augment_samples: apply random flips and rotations.
        :param synthetic_fraction: share of samples drawn from new synthetic scenes
            (data/synthetic.py) instead of the pairs.
        :param downsamplers: names in degradations.DOWNSAMPLERS; each sample's LR depth is made
            with one of them, drawn uniformly.
        :param sensor: share of samples whose LR depth is degraded further as a depth camera's
            (degradations.sensor_degrade), its holes then filled with the nearest valid value
            as the predictor does before the network. The target stays clean (NaN only where the
            ground truth has no value, which the loss leaves out).
        :param rig: share of samples whose LR depth is made instead as the node makes it from
            a simulated depth camera beside the colour camera (data.rig.simulate_rig), holes
            filled in the same way; the rest take the kernels and ``sensor``.
        :param rig_offset: share of the rig samples drawn with a real rig's calibration
            error before alignment (data.rig.draw_rig's ``offset``) and aligned to the crop's
            colour as the node aligns, so that the network sees the residual it leaves.
        :param rig_registered: share of the rig samples whose depth reaches the LR grid by the
            node's 'registered' route (registered at the colour camera's full size first, as
            a driver's aligned depth), the rest by its 'raw' route.
        :param metric: share of samples whose input and target are shown in metres as a depth
            camera gives them (data.rig.metric_view: large = far, the inverse of the pairs'
            disparity), before the kernel (or after the rig, which renders disparity, and
            whose sensor then works in the view's metres).
        """
        unknown = [name for name in downsamplers if name not in DOWNSAMPLERS]
        if unknown or not downsamplers:
            raise ValueError(f'unknown downsampling {unknown or downsamplers}; '
                             f'choose from {sorted(DOWNSAMPLERS)}')
        self.downsamplers = tuple(downsamplers)
        if not pairs:
            raise ValueError('no training pairs')
        self.scale = scale
        self.pairs = [self._prepare(pair) for pair in pairs]
        smallest = min(min(d.shape) for d, _, _ in self.pairs)
        self.crop = min(crop_size, smallest) // scale * scale
        self.scale = scale
        self.augment = augment_samples
        self.synthetic_fraction = synthetic_fraction
        self.sensor = sensor
        self.rig = rig
        self.rig_offset = rig_offset
        self.rig_registered = rig_registered
        self.metric = metric

    def _prepare(self, pair):
        """
        Return (depth, colour, truth) of a pair cropped to the scale; depth normalised over it.

        ``depth`` has its holes (0 or NaN: no ground truth) filled with the nearest value, as
        the node fills the camera's before the network: the inputs are made from it. ``truth``
        is NaN there: the target, whose holes the loss leaves out.
        """
        depth = crop_to_multiple(pair['depth'], self.scale)
        valid = valid_depth_mask(depth)
        low, high = depth_range(depth, valid)
        truth = np.where(valid, normalize_depth(depth, low, high), np.nan).astype(np.float32)
        return (fill_missing(truth, valid), color_to_unit(crop_to_multiple(pair['rgb'],
                                                                           self.scale)), truth)

    def sample(self, rng):
        """Return one random crop (or synthetic scene) as a dict of arrays."""
        c = self.crop
        if self.synthetic_fraction and rng.random() < self.synthetic_fraction:
            depth, rgb, truth = self._prepare(synthetic_pair(rng, c, c))
        else:
            depth, rgb, truth = self.pairs[int(rng.integers(len(self.pairs)))]
        field_width = depth.shape[1]  # the crop's rig sees with the whole image's angles
        top = int(rng.integers(depth.shape[0] - c + 1))
        left = int(rng.integers(depth.shape[1] - c + 1))
        window = (slice(top, top + c), slice(left, left + c))
        depth, rgb, truth = depth[window], rgb[window], truth[window]
        if self.augment:
            depth, rgb, truth = augment([depth, rgb, truth], rng)
        view = distances = None  # no draw without metric: the samples stay those of before
        if self.metric and rng.random() < self.metric:
            distances = draw_distances(rng)
            view = metric_view(*distances)
        if self.rig and rng.random() < self.rig:  # no draw without it: earlier samples stay
            offset = bool(self.rig_offset) and rng.random() < self.rig_offset
            registered = bool(self.rig_registered) and rng.random() < self.rig_registered
            # The rig renders the truth, holes and all: no depth where there is none; shown
            # in metres, in those of the view.
            depth_lr = simulate_rig(truth, self.scale, rng, offset=offset, color=rgb,
                                    field_width=field_width, distances=distances,
                                    route='registered' if registered else 'raw')
            seen = np.isfinite(depth_lr)
            if seen.any():
                depth_lr = fill_missing(depth_lr, seen)
                if view:
                    depth_lr, truth = view(depth_lr), view(truth)
                return self._sample(depth_lr, rgb, truth)
            # A few LR pixels can see none of the rig's depth (about 1 in 1000 rig samples of
            # 4x4 LR crops): this sample takes a kernel instead of stopping the run, which a
            # resume would replay at the same step.
        if view:
            depth, truth = view(depth), view(truth)
        # One kernel: no draw, so that the samples stay those of earlier versions.
        pick = int(rng.integers(len(self.downsamplers))) if len(self.downsamplers) > 1 else 0
        depth_lr = DOWNSAMPLERS[self.downsamplers[pick]](depth, self.scale)
        if self.sensor and rng.random() < self.sensor:
            depth_lr = sensor_degrade(depth_lr, rng)
            depth_lr = fill_missing(depth_lr, np.isfinite(depth_lr))
        return self._sample(depth_lr, rgb, truth)

    @staticmethod
    def _sample(depth_lr, rgb, truth):
        """Return one sample's dict of channel-first arrays ('depth_hr' NaN: no truth)."""
        return {
            'depth_lr': depth_lr[None],
            'rgb': np.ascontiguousarray(rgb.transpose(2, 0, 1)),
            'depth_hr': truth[None].copy(),
        }

    def batch(self, rng, size):
        """Return ``size`` samples stacked along a new first axis."""
        samples = [self.sample(rng) for _ in range(size)]
        return {key: np.stack([s[key] for s in samples]) for key in samples[0]}


def prefetched_batches(dataset, seeds, size, workers=0):
    """
    Yield ``dataset.batch(np.random.default_rng(seed), size)`` for each seed, in order.

    With ``workers`` > 0 the batches are made ahead in that many threads (numpy and OpenCV
    release the GIL), so that a GPU does not wait for the CPU. Every batch depends on its
    seed alone, so the result is the same with any number of workers.
    """
    seeds = iter(seeds)
    if workers <= 0:
        for seed in seeds:
            yield dataset.batch(np.random.default_rng(seed), size)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        try:
            while True:
                while len(pending) < 2 * workers:
                    seed = next(seeds, None)
                    if seed is None:
                        break
                    pending.append(pool.submit(dataset.batch, np.random.default_rng(seed), size))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def load_split(data_dir, val_names=(), exclude=MIDDLEBURY_TEST + MIDDLEBURY_TEST_SCENES):
    """
    Load the pairs of ``data_dir`` as (train, val) lists, leaving out ``exclude``.

    By default the test scenes are left out under either naming (middlebury30's numbers,
    middlebury_full's scene names).

    A validation name that is not a pair there, or that is excluded (the test images), is a
    ValueError: validation would otherwise run on fewer images than asked, or on none.
    """
    names = list_pairs(data_dir)
    missing = [n for n in val_names if n not in names]
    if missing:
        raise ValueError(f"validation pairs {', '.join(missing)}: not in '{data_dir}', "
                         f"whose pairs are {', '.join(names)}")
    excluded = [n for n in val_names if n.lower() in exclude]
    if excluded:
        raise ValueError(f"validation pairs {', '.join(excluded)}: held out of training and "
                         'validation (test images, for reporting only)')
    names = [n for n in names if n.lower() not in exclude]  # Art.png is art
    train = [load_pair(data_dir, n) for n in names if n not in val_names]
    val = [load_pair(data_dir, n) for n in names if n in val_names]
    return train, val
