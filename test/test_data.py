"""Degradations, synthetic scenes and training crops."""

import os
import shutil
import threading

from depth_sr_ros.data.datasets import (
    CropDataset, load_split, MIDDLEBURY_TEST, prefetched_batches)
from depth_sr_ros.data.degradations import (
    add_gaussian_noise, antialiased_bicubic_downsample, bicubic_downsample, DOWNSAMPLERS,
    flying_pixels, kinect_holes, nearest_downsample, point_downsample, sensor_degrade)
from depth_sr_ros.data.middlebury import list_pairs, load_pair
from depth_sr_ros.data.rig import metric_view
from depth_sr_ros.data.synthetic import synthetic_pair
from helpers import FIXTURES
import numpy as np
import pytest


def test_downsampling_protocols():
    depth = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.testing.assert_array_equal(nearest_downsample(depth, 4), [[0, 4], [32, 36]])
    # centred: the mean of each block's central 2x2 (rows 1-2, columns 1-2 at 4x)
    np.testing.assert_array_equal(point_downsample(depth, 4), [[13.5, 17.5], [45.5, 49.5]])
    np.testing.assert_array_equal(point_downsample(depth[:6, :6], 3), [[9, 12], [33, 36]])
    # On a ramp a centred kernel gives each block's mean; the top-left pixel does not.
    area = DOWNSAMPLERS['area'](depth, 4)
    np.testing.assert_array_equal(point_downsample(depth, 4), area)
    assert not np.allclose(nearest_downsample(depth, 4), area)
    assert bicubic_downsample(depth, 2).shape == (4, 4)
    with pytest.raises(ValueError, match='not a multiple of scale 3'):
        bicubic_downsample(depth, 3)


def test_noise_is_reproducible_from_the_generator():
    depth = np.full((100, 100), 50, np.float32)
    a = add_gaussian_noise(depth, 5.0, np.random.default_rng(3))
    b = add_gaussian_noise(depth, 5.0, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert abs(a.std() - 5.0) < 0.3


def test_kinect_holes_follow_depth_edges():
    depth = np.full((64, 64), 50, np.float32)
    depth[:, 32:] = 200
    holed = kinect_holes(depth, np.random.default_rng(0), edge_fraction=1.0, random_holes=0)
    missing = holed == 0
    assert missing[:, 30:34].all()  # the whole edge band
    assert not missing[:, :28].any() and not missing[:, 36:].any()
    holed = kinect_holes(depth, np.random.default_rng(0), edge_fraction=0.0, random_holes=3)
    assert 0 < (holed == 0).sum() < 3 * 81
    assert (depth == 50).sum() == 64 * 32  # the input is not modified


def test_synthetic_scenes_have_occlusion_edges_thin_structures_and_texture():
    pair = synthetic_pair(np.random.default_rng(5), 128, 160)
    depth, rgb = pair['depth'], pair['rgb']
    assert depth.shape == (128, 160) and rgb.shape == (128, 160, 3) and rgb.dtype == np.uint8
    assert 30 < depth.min() and depth.max() < 245
    jumps = np.abs(np.diff(depth, axis=1))
    assert (jumps > 10).any()  # sharp occlusion edges
    assert np.median(jumps) < 1  # piecewise smooth
    again = synthetic_pair(np.random.default_rng(5), 128, 160)
    np.testing.assert_array_equal(again['rgb'], rgb)
    # Colour has edges where depth has none (texture, paintings): the texture-copy trap.
    color_edges = np.abs(np.diff(rgb.astype(np.float32).mean(axis=2), axis=1)) > 20
    assert (color_edges & (jumps < 0.5)).sum() > 100


def test_crops_are_augmented_normalised_and_degraded():
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    dataset = CropDataset(pairs, scale=4, crop_size=64)
    batch = dataset.batch(np.random.default_rng(0), 3)
    assert batch['depth_lr'].shape == (3, 1, 16, 16)
    assert batch['rgb'].shape == (3, 3, 64, 64) and batch['depth_hr'].shape == (3, 1, 64, 64)
    assert 0 <= batch['depth_hr'].min() and batch['depth_hr'].max() <= 1
    assert batch['rgb'].max() <= 1
    mixed = CropDataset(pairs, scale=4, crop_size=64, synthetic_fraction=1.0)
    sample = mixed.sample(np.random.default_rng(1))
    assert sample['depth_hr'].shape == (1, 64, 64) and sample['depth_hr'].max() <= 1.0001


def test_split_leaves_out_the_papers_test_images(tmp_path):
    for sub in ('depth', 'rgb'):
        (tmp_path / sub).mkdir()
    for name in ('01', '02', '13'):
        for sub in ('depth', 'rgb'):
            shutil.copy(os.path.join(FIXTURES, sub, 'cones.png'), tmp_path / sub / f'{name}.png')
    train, val = load_split(str(tmp_path), val_names=('13',))
    assert [p['name'] for p in train] == ['01'] and [p['name'] for p in val] == ['13']
    assert '02' in MIDDLEBURY_TEST
    # Validation names that would leave validation short are refused, not dropped.
    with pytest.raises(ValueError, match='validation pairs 02: held out of training and '):
        load_split(str(tmp_path), val_names=('13', '02'))
    with pytest.raises(ValueError, match='validation pairs 27: not in .* pairs are 01, 02, 13'):
        load_split(str(tmp_path), val_names=('27',))


def test_split_leaves_out_the_test_scenes_by_name_too(tmp_path):
    # middlebury_full names its pairs by scene: Art and Moebius are two of the test images.
    for sub in ('depth', 'rgb'):
        os.makedirs(tmp_path / sub)
        for name in ('art', 'Moebius', 'cones'):
            shutil.copy(os.path.join(FIXTURES, sub, 'cones.png'), tmp_path / sub / f'{name}.png')
    train, val = load_split(str(tmp_path))
    assert [p['name'] for p in train] == ['cones'] and val == []


def test_prefetched_batches_equal_serial_batches_in_order():
    pairs = [synthetic_pair(np.random.default_rng(i), 48, 64) for i in range(2)]
    dataset = CropDataset(pairs, 4, 32)
    seeds = [[0, 0, step] for step in range(7)]
    serial = list(prefetched_batches(dataset, seeds, 3, workers=0))
    threaded = list(prefetched_batches(dataset, seeds, 3, workers=3))
    assert len(threaded) == 7
    for a, b in zip(serial, threaded):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # Stopping early (a time budget) leaves no thread running.
    threads = threading.active_count()
    early = prefetched_batches(dataset, iter(seeds), 3, workers=2)
    next(early)
    assert threading.active_count() > threads
    early.close()
    assert threading.active_count() == threads


def test_antialiased_bicubic_is_a_normalised_stretched_cubic():
    # Every HR pixel of a 4x block and its neighbours contribute; constants and, away from the
    # border, linear ramps are kept (the cubic kernel reproduces both); the result differs
    # from plain bicubic on detail finer than the LR grid.
    ramp = np.add.outer(np.arange(64.0), 2 * np.arange(48.0)).astype(np.float32)
    low = antialiased_bicubic_downsample(ramp, 4)
    centres = (np.arange(16) + 0.5) * 4 - 0.5, (np.arange(12) + 0.5) * 4 - 0.5
    expected = np.add.outer(centres[0], 2 * centres[1])
    np.testing.assert_allclose(low[2:-2, 2:-2], expected[2:-2, 2:-2], atol=1e-4)
    np.testing.assert_allclose(antialiased_bicubic_downsample(np.full((8, 8), 3.0), 2), 3.0)
    noise = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    # Plain bicubic samples 4 of 16 pixels per block: noise keeps most of its spread.
    smoothed = antialiased_bicubic_downsample(noise, 4).std()
    assert smoothed < 0.5 * bicubic_downsample(noise, 4).std()


def test_crops_draw_their_downsampling_from_the_mix():
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    plain = CropDataset(pairs, 4, 32, downsamplers=('bicubic',))
    mixed = CropDataset(pairs, 4, 32, downsamplers=tuple(DOWNSAMPLERS))
    used = set()
    for seed in range(40):
        sample = mixed.sample(np.random.default_rng(seed))
        used |= {name for name, fn in DOWNSAMPLERS.items()
                 if np.allclose(fn(sample['depth_hr'][0], 4), sample['depth_lr'][0], atol=1e-6)}
    assert used == set(DOWNSAMPLERS)
    # One kernel draws nothing, so its samples are those of earlier versions.
    a = plain.sample(np.random.default_rng(3))
    b = CropDataset(pairs, 4, 32).sample(np.random.default_rng(3))
    np.testing.assert_array_equal(a['depth_lr'], b['depth_lr'])
    with pytest.raises(ValueError, match='unknown downsampling'):
        CropDataset(pairs, 4, 32, downsamplers=('lanczos',))


def test_flying_pixels_fall_between_the_surfaces_of_an_edge_only():
    depth = np.full((32, 32), 0.2, np.float32)
    depth[:, 16:] = 0.9
    out = flying_pixels(depth, np.random.default_rng(0), fraction=1.0)
    moved = out != depth
    assert moved[:, 15:17].mean() > 0.9 and not moved[:, :14].any() and not moved[:, 18:].any()
    assert (out >= 0.2).all() and (out <= 0.9).all()


def test_sensor_noise_grows_towards_one_end_of_the_depth_range():
    # A smooth ramp (no edges, so nothing flies or is lost along edges): the noise's spread at
    # the far end is four times that at the near end, whichever end the draw made far.
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (256, 1))
    noisier = set()
    for seed in range(8):
        residual = sensor_degrade(ramp, np.random.default_rng(seed)) - ramp
        ends = [np.nanstd(residual[:, :16]), np.nanstd(residual[:, -16:])]
        assert 3.0 < max(ends) / min(ends) < 5.0
        assert max(ends) < 0.03 * 1.1
        noisier.add(int(np.argmax(ends)))
    assert noisier == {0, 1}  # depth (large = far) and disparity (large = near) both met
    a = sensor_degrade(ramp, np.random.default_rng(7))
    np.testing.assert_array_equal(a, sensor_degrade(ramp, np.random.default_rng(7)))


def test_sensor_degradation_loses_depth_along_edges_and_in_blobs():
    depth = np.full((64, 64), 0.2, np.float32)
    depth[:, 32:] = 0.9
    lost_edge = lost_elsewhere = 0
    for seed in range(20):
        out = sensor_degrade(depth, np.random.default_rng(seed))
        lost = np.isnan(out)
        assert not lost.all()
        lost_edge += lost[:, 30:34].mean()
        lost_elsewhere += lost[:, :26].mean()
    assert lost_edge > 5 * lost_elsewhere > 0


def test_sensor_crops_keep_their_target_and_give_the_network_filled_depth():
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    clean = CropDataset(pairs, 4, 64).sample(np.random.default_rng(5))
    noisy = CropDataset(pairs, 4, 64, sensor=1.0).sample(np.random.default_rng(5))
    np.testing.assert_array_equal(clean['depth_hr'], noisy['depth_hr'])
    np.testing.assert_array_equal(clean['rgb'], noisy['rgb'])
    assert np.isfinite(noisy['depth_lr']).all()
    assert not np.allclose(clean['depth_lr'], noisy['depth_lr'], atol=1e-4)
    # A share: some crops clean (exactly the kernel's output), the others degraded.
    half = CropDataset(pairs, 4, 64, sensor=0.5)
    kept_clean = [np.array_equal(s['depth_lr'][0], bicubic_downsample(s['depth_hr'][0], 4))
                  for s in (half.sample(np.random.default_rng(seed)) for seed in range(40))]
    assert 5 < sum(kept_clean) < 35


def test_a_rig_sample_that_sees_no_depth_takes_a_kernel_instead(monkeypatch):
    # With 4x4 LR crops about 1 in 1000 rig samples had no depth pixel: fill_missing raised,
    # the run stopped, and its resume drew the same batch and stopped again.
    import depth_sr_ros.data.datasets as datasets
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    monkeypatch.setattr(datasets, 'simulate_rig',
                        lambda truth, scale, rng, **kw: np.full(
                            (truth.shape[0] // scale, truth.shape[1] // scale), np.nan,
                            np.float32))
    sample = CropDataset(pairs, 4, 64, rig=1.0).sample(np.random.default_rng(3))
    np.testing.assert_array_equal(sample['depth_lr'][0],
                                  bicubic_downsample(sample['depth_hr'][0], 4))


def test_a_metric_sample_shows_the_same_crop_as_a_depth_camera_gives_it():
    # The pairs hold disparity (1 = near); the node normalises a camera's metres (1 = far).
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    plain = CropDataset(pairs, 4, 64).sample(np.random.default_rng(5))['depth_hr'][0]
    sample = CropDataset(pairs, 4, 64, metric=1.0).sample(np.random.default_rng(5))
    metric = sample['depth_hr'][0]
    np.testing.assert_array_equal(np.isnan(plain), np.isnan(metric))
    order = np.argsort(plain[np.isfinite(plain)], kind='stable')
    assert (np.diff(metric[np.isfinite(metric)][order]) <= 1e-6).all()  # near and far swapped
    assert np.nanmin(metric) >= 0 and np.nanmax(metric) <= 1
    assert np.isfinite(sample['depth_lr']).all()
    # Inverse depth: the view is not a flip (1 - plain), but metres of a drawn scene.
    assert not np.allclose(metric, 1 - plain, atol=0.01, equal_nan=True)
    view = metric_view(0.8, 4.0)
    ends = view(np.array([1.0, 0.5, 0.0, np.nan], np.float32))
    # Half-way in disparity lies nearer than half-way in metres (depth is its inverse).
    assert ends[0] == 0 and ends[2] == pytest.approx(1) and 0 < ends[1] < 0.5
    assert np.isnan(ends[3])


def _drawn_rigs(monkeypatch):
    """Return the list every rig a CropDataset draws is appended to."""
    import depth_sr_ros.data.rig as rig_module
    drawn, real = [], rig_module.draw_rig

    def spy(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]
    monkeypatch.setattr(rig_module, 'draw_rig', spy)
    return drawn


def test_a_crops_rig_sees_with_the_angles_of_the_whole_image(monkeypatch):
    # A 64-pixel crop of a wider image: the colour camera's focal length is that of the whole
    # image's 50-90 degree view (width / 2 / tan(45..25 degrees)), not the crop's.
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    drawn = _drawn_rigs(monkeypatch)
    dataset = CropDataset(pairs, 4, 64, rig=1.0)
    for seed in range(3):
        dataset.sample(np.random.default_rng(seed))
    widths = {pair.shape[1] for pair, _, _ in dataset.pairs}
    assert len(drawn) == 3 and min(widths) > 2 * 64
    for rig in drawn:
        assert rig.color.width == 64
        assert min(widths) / 2 <= rig.color.matrix[0, 0] <= max(widths) * 1.08


def test_a_rig_sample_shown_in_metres_has_the_metres_of_the_view(monkeypatch):
    # The sensor's noise grows with its metres: they must be those the sample is shown in.
    import depth_sr_ros.data.datasets as datasets_module
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    drawn, views = _drawn_rigs(monkeypatch), []
    real_view = datasets_module.metric_view

    def spy(near, far):
        views.append((near, far))
        return real_view(near, far)
    monkeypatch.setattr(datasets_module, 'metric_view', spy)
    dataset = CropDataset(pairs, 4, 32, rig=1.0, metric=1.0)
    for seed in range(3):
        dataset.sample(np.random.default_rng(seed))
    assert len(views) == len(drawn) == 3
    assert [(rig.near, rig.far) for rig in drawn] == views


def test_a_share_of_rig_samples_takes_the_registered_route(monkeypatch):
    import depth_sr_ros.data.datasets as datasets_module
    pairs = [load_pair(FIXTURES, name) for name in list_pairs(FIXTURES)]
    routes, real = [], datasets_module.simulate_rig

    def spy(*args, **kwargs):
        routes.append(kwargs.get('route', 'raw'))
        return real(*args, **kwargs)
    monkeypatch.setattr(datasets_module, 'simulate_rig', spy)
    for share in (0.0, 0.5):
        dataset = CropDataset(pairs, 4, 32, rig=1.0, rig_registered=share)
        samples = [dataset.sample(np.random.default_rng(seed)) for seed in range(12)]
        assert all(np.isfinite(sample['depth_lr']).all() for sample in samples)
    assert routes[:12] == ['raw'] * 12
    assert 2 <= routes[12:].count('registered') <= 10 and 'raw' in routes[12:]


def test_holes_in_the_ground_truth_stay_out_of_inputs_and_are_nan_in_targets():
    # A hole (0) used to be normalised like depth: far below the valid range, in the target
    # and, through the downsampling, in the LR input.
    depth = np.full((64, 64), 150, np.float32)
    depth[:, 32:] = 100
    depth[20:28, 8:16] = 0
    pair = {'name': 'x', 'depth': depth, 'rgb': np.zeros((64, 64, 3), np.uint8)}
    for kernels, rig in ((('bicubic',), 0.0), (('area', 'point'), 0.0), (('bicubic',), 1.0)):
        dataset = CropDataset([pair], 4, 64, augment_samples=False, downsamplers=kernels,
                              rig=rig)
        sample = dataset.sample(np.random.default_rng(0))
        target, low = sample['depth_hr'][0], sample['depth_lr'][0]
        assert np.isnan(target[20:28, 8:16]).all()
        assert np.isfinite(target[~np.isnan(target)]).all()
        assert (target[np.isfinite(target)] >= 0).all() and np.nanmax(target) <= 1
        assert np.isfinite(low).all() and low.min() > -0.05 and low.max() < 1.05  # was -2
