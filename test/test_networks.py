"""Shapes, parameter counts, gradients and input checks of AHMF and PAG-Net."""

from depth_sr_ros.networks import AHMF, build_model, PAGNet
from depth_sr_ros.networks.common import count_parameters
import pytest
import torch

CASES = [('ahmf', s) for s in AHMF.scales] + [('pag_net', s) for s in PAGNet.scales]


@pytest.mark.parametrize('name,scale', CASES)
@pytest.mark.parametrize('h,w', [(5, 7), (8, 3)])
def test_output_shape_for_every_scale_and_odd_sizes(name, scale, h, w):
    torch.manual_seed(0)
    model = build_model(name, scale=scale).eval()
    depth = torch.rand(2, 1, h, w)
    guide = torch.rand(2, 3, h * scale, w * scale)
    with torch.no_grad():
        out = model(depth, guide)
    assert out.shape == (2, 1, h * scale, w * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('scale,expected', [(4, 2.54e6), (8, 3.36e6), (16, 5.75e6)])
def test_ahmf_parameter_count_matches_the_authors_within_6_percent(scale, expected):
    count = count_parameters(build_model('ahmf', scale=scale))
    assert abs(count - expected) / expected < 0.06, count


@pytest.mark.parametrize('name,scale', [('ahmf', 4), ('pag_net', 8)])
def test_gradients_reach_every_parameter(name, scale):
    # The zero-initialised convs (tail, residual ends) pass no gradient at the very first step;
    # after four Adam steps every parameter must be learning.
    torch.manual_seed(0)
    model = build_model(name, scale=scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    depth = torch.rand(2, 1, 6, 5)
    guide = torch.rand(2, 3, 6 * scale, 5 * scale)
    target = torch.rand(2, 1, 6 * scale, 5 * scale)
    for _ in range(4):
        optimizer.zero_grad()
        (model(depth, guide) - target).abs().mean().backward()
        optimizer.step()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


@pytest.mark.parametrize('name', ['ahmf', 'pag_net'])
def test_signal_neither_vanishes_nor_explodes_through_16x_networks(name):
    # With PyTorch's default conv init the first layers' gradients were 1e-9 of the tail's at
    # 16x (AHMF did not learn in 1000 steps) and with plain He init PAG-Net's features reached
    # a standard deviation of 4e4; init_weights_ must keep both within sane bounds.
    torch.manual_seed(0)
    model = build_model(name, scale=16)
    torch.nn.init.normal_(model.tail.weight, std=1e-3)  # zero at init: give it a gradient path
    features = []
    model.tail.register_forward_hook(lambda layer, inputs, output: features.append(inputs[0]))
    depth = torch.rand(2, 1, 6, 6)
    out = model(depth, torch.rand(2, 3, 96, 96))
    (out - torch.rand_like(out)).abs().mean().backward()
    assert 0.1 < features[0].std().item() < 10
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    ratio = first.weight.grad.abs().mean() / model.tail.weight.grad.abs().mean()
    assert ratio > 1e-5, ratio.item()


@pytest.mark.parametrize('name', ['ahmf', 'pag_net'])
@pytest.mark.parametrize('scale', [4, 16])
def test_a_new_network_returns_bicubic_upsampling_exactly(name, scale):
    # The tail is zero at init and its output is added to bicubic: training starts at bicubic.
    model = build_model(name, scale=scale).eval()
    depth = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        out = model(depth, torch.rand(1, 3, 6 * scale, 6 * scale))
    expected = torch.nn.functional.interpolate(depth, scale_factor=scale, mode='bicubic',
                                               align_corners=False)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize('name', ['ahmf', 'pag_net'])
def test_mismatched_inputs_are_rejected_with_a_message(name):
    model = build_model(name, scale=4)
    with pytest.raises(ValueError, match='does not match depth'):
        model(torch.rand(1, 1, 8, 8), torch.rand(1, 3, 16, 32))
    with pytest.raises(ValueError, match=r'depth must have shape \(B, 1, h, w\)'):
        model(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r'guidance must have shape \(B, 3, H, W\)'):
        model(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 32, 32))


def test_unsupported_scales_and_names_are_rejected():
    with pytest.raises(ValueError, match='scale 2 is not supported'):
        build_model('ahmf', scale=2)
    with pytest.raises(ValueError, match='scale 3 is not supported'):
        build_model('pag_net', scale=3)
    with pytest.raises(ValueError, match="unknown architecture 'srcnn'"):
        build_model('srcnn', scale=4)


@pytest.mark.parametrize('kernel', [1, 3, 5])
def test_fused_space_to_depth_and_back_compute_what_the_layers_do(kernel):
    # run_fused replaces [pixel unshuffle, conv] by one strided conv and [1x1 conv, pixel
    # shuffle] by one transposed conv: same values and same gradients as the layers in turn.
    from depth_sr_ros.networks.common import conv, run_fused
    torch.manual_seed(kernel)
    down = torch.nn.Sequential(torch.nn.PixelUnshuffle(2), conv(4 * 8, 16, kernel),
                               torch.nn.PReLU())
    up = torch.nn.Sequential(conv(16, 4 * 8, kernel), torch.nn.PixelShuffle(2))
    x = torch.randn(2, 8, 12, 18)
    for layers, inputs in ((down, x), (up, torch.randn(2, 16, 6, 9))):
        fused, plain = run_fused(layers, inputs), layers(inputs)
        assert fused.shape == plain.shape
        torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
        weight = next(layers.parameters())
        grads = [torch.autograd.grad(out.square().sum(), weight)[0] for out in (fused, plain)]
        torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)


def test_the_fused_depth_to_space_takes_fewer_channels_than_its_bias_block():
    # Its bias comes in as BIAS_CHANNELS extra input channels; they were cut from the input,
    # so an input of fewer channels (a narrow AHMF) failed.
    from depth_sr_ros.networks.common import conv, run_fused
    torch.manual_seed(0)
    up = torch.nn.Sequential(conv(4, 4 * 8, 1), torch.nn.PixelShuffle(2))
    inputs = torch.randn(2, 4, 6, 9)
    torch.testing.assert_close(run_fused(up, inputs), up(inputs), atol=1e-5, rtol=1e-5)
    assert build_model('ahmf', scale=4, channels=4)(torch.rand(1, 1, 6, 8),
                                                    torch.rand(1, 3, 24, 32)).shape == (
        1, 1, 24, 32)
