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
    torch.manual_seed(0)
    model = build_model(name, scale=scale)
    depth = torch.rand(2, 1, 6, 5)
    out = model(depth, torch.rand(2, 3, 6 * scale, 5 * scale))
    (out - torch.rand_like(out)).abs().mean().backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


@pytest.mark.parametrize('name', ['ahmf', 'pag_net'])
def test_output_is_bicubic_plus_a_learned_residual(name):
    # With the reconstruction conv zeroed, the network must return bicubic upsampling exactly.
    model = build_model(name, scale=4).eval()
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    depth = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        out = model(depth, torch.rand(1, 3, 24, 24))
    expected = torch.nn.functional.interpolate(depth, scale_factor=4, mode='bicubic',
                                               align_corners=False)
    torch.testing.assert_close(out, expected)


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
