"""Building blocks shared by the networks, and the input contract they all check."""

import math

import torch
from torch import nn


def conv(in_channels, out_channels, kernel_size=3):
    """Return a same-size 2-D convolution (odd kernel, zero padding, with bias)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


def log2_scale(scale, supported):
    """Return log2(scale) after checking that the scale is one of ``supported``."""
    if scale not in supported:
        raise ValueError(f'scale {scale} is not supported; choose one of {sorted(supported)}')
    return int(round(math.log2(scale)))


class ResidualBlock(nn.Module):
    """conv3x3 - PReLU - conv3x3 plus the identity."""

    def __init__(self, channels):
        """
        Build the block.

        :param channels: number of input and output feature channels.
        """
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.PReLU(), conv(channels, channels))

    def forward(self, x):
        """Return x + body(x)."""
        return x + self.body(x)


def check_inputs(depth_lr, guide_hr, scale):
    """
    Check the (depth, guidance) contract shared by all networks; raise ValueError if broken.

    depth_lr must be (B, 1, h, w) and guide_hr (B, 3, scale*h, scale*w).
    """
    if depth_lr.dim() != 4 or depth_lr.shape[1] != 1:
        raise ValueError(f'depth must have shape (B, 1, h, w), got {tuple(depth_lr.shape)}')
    if guide_hr.dim() != 4 or guide_hr.shape[1] != 3:
        raise ValueError(f'guidance must have shape (B, 3, H, W), got {tuple(guide_hr.shape)}')
    b, _, h, w = depth_lr.shape
    expected = (b, 3, h * scale, w * scale)
    if tuple(guide_hr.shape) != expected:
        raise ValueError(
            f'guidance shape {tuple(guide_hr.shape)} does not match depth {tuple(depth_lr.shape)} '
            f'at scale {scale}: expected {expected}')


def upsample_bicubic(depth_lr, scale):
    """Bicubic upsampling (no antialiasing, align_corners=False), the networks' skip path."""
    return nn.functional.interpolate(depth_lr, scale_factor=scale, mode='bicubic',
                                     align_corners=False)


def scale_down_(layer, factor):
    """
    Multiply a layer's initial weights by ``factor`` and zero its bias, in place.

    Used on the last conv of each network, whose output is added to bicubic upsampling: a
    small initial residual lets training start close to bicubic instead of from noise.
    """
    with torch.no_grad():
        layer.weight.mul_(factor)
        layer.bias.zero_()


def count_parameters(module):
    """Return the number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
