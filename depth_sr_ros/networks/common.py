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


# conv_depth_to_space's channels that carry the bias (a one and seven zeros).
BIAS_CHANNELS = 8


def run_fused(layers, x):
    """
    Run the nn.Sequential ``layers`` on x, fusing the 2x space-to-depth steps with their convs.

    [PixelUnshuffle(2), Conv2d] runs as ``space_to_depth_conv`` and [1x1 Conv2d,
    PixelShuffle(2)] as ``conv_depth_to_space``: the same sums with the same parameters,
    without the copy that rearranges the features (for a 64-channel 640x480 map on this
    project's CPU the copy took longer than the conv). A 3x3 or 5x5 conv before a pixel
    shuffle is left as it is: as a transposed conv it ran slower. Other layers run as they
    are.
    """
    layers = list(layers)
    i = 0
    while i < len(layers):
        first, second = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(first, nn.PixelUnshuffle) and first.downscale_factor == 2 and isinstance(
                second, nn.Conv2d):
            x, i = space_to_depth_conv(x, second), i + 2
        elif (isinstance(first, nn.Conv2d) and first.kernel_size == (1, 1)
              and isinstance(second, nn.PixelShuffle) and second.upscale_factor == 2):
            x, i = conv_depth_to_space(x, first), i + 2
        else:
            x, i = first(x), i + 1
    return x


def space_to_depth_conv(x, layer):
    """
    Return layer(pixel_unshuffle(x, 2)) computed as one stride-2 conv on x.

    ``layer`` is a same-size Conv2d of odd kernel k on the 4C unshuffled channels; its weight
    W[o, 4c + 2i + j, dy, dx] becomes the weight of a 2k kernel at [o, c, 2dy + i, 2dx + j].
    """
    out_channels, in4, k, _ = layer.weight.shape
    weight = layer.weight.reshape(out_channels, in4 // 4, 2, 2, k, k).permute(0, 1, 4, 2, 5, 3)
    weight = weight.reshape(out_channels, in4 // 4, 2 * k, 2 * k)
    return nn.functional.conv2d(x, weight, layer.bias, stride=2, padding=2 * (k // 2))


def conv_depth_to_space(x, layer):
    """
    Return pixel_shuffle(layer(x), 2) computed as one stride-2 transposed conv on x.

    ``layer`` is a 1x1 Conv2d with 4C outputs. Output pixel (2h + i, 2w + j) of channel o is
    W[4o + 2i + j] . x[:, h, w] + b[4o + 2i + j]: a transposed conv with a 2x2 kernel and
    stride 2. The bias depends on (i, j), so it comes in as the weight of an added input
    channel of ones. Seven channels of zeros come with it: oneDNN's fast kernels want a
    multiple of 8 input channels (measured for 240x320 in bfloat16 here: 64 channels 25 ms,
    65 channels 45 ms, 72 channels 29 ms; adding the bias afterwards took longer).
    """
    out4, in_channels = layer.weight.shape[:2]
    weight = layer.weight.reshape(out4, in_channels)
    if layer.bias is not None:
        extra = torch.zeros(out4, BIAS_CHANNELS, dtype=weight.dtype, device=weight.device)
        extra[:, 0] = layer.bias
        weight = torch.cat([weight, extra], dim=1)
        if x.shape[1] >= BIAS_CHANNELS:  # zeros_like keeps x's memory format
            ones = torch.zeros_like(x[:, :BIAS_CHANNELS])
        else:  # a network narrower than BIAS_CHANNELS (tests' tiny ones)
            ones = x.new_zeros((x.shape[0], BIAS_CHANNELS, *x.shape[2:]))
        ones[:, 0] = 1
        x = torch.cat([x, ones], dim=1)
    weight = weight.reshape(out4 // 4, 2, 2, -1).permute(3, 0, 1, 2)
    return nn.functional.conv_transpose2d(x, weight, stride=2)


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


def in_float32(module, x):
    """
    Run ``module`` on ``x`` in float32 when autocast is on (mixed precision), else as it is.

    The networks' first layer on the depth input goes through here: bfloat16 keeps 8
    significant bits, so normalised depth over a 5 m range would be rounded to about 2 cm
    before anything else. Measured on the shipped AHMF 4x (320x240 player frame, against
    float32): autocast everywhere 0.52 mm mean / 4.7 mm p99 error; with this first layer in
    float32 0.15 mm / 1.2 mm, at the same speed. The global skip (bicubic of the input) and the
    final addition are float32 without help: interpolation is not autocast, and bf16 + float32
    gives float32.
    """
    if not torch.is_autocast_enabled(x.device.type):
        return module(x)
    with torch.autocast(x.device.type, enabled=False):
        return module(x.float())


def upsample_bicubic(depth_lr, scale):
    """Bicubic upsampling (no antialiasing, align_corners=False), the networks' skip path."""
    return nn.functional.interpolate(depth_lr, scale_factor=scale, mode='bicubic',
                                     align_corners=False)


def init_weights_(model, negative_slope, zero):
    """
    Give every conv He (Kaiming) initial weights and zero biases; zero the weights of ``zero``.

    PyTorch's default conv init keeps only about a third of the signal's variance per layer,
    in the forward and the backward pass. The networks are 20 to 30 convs deep without
    normalisation, so with it the first layers' gradients at 16x were 1e-10 to 1e-12 per
    weight, far below Adam's eps (1e-8), and training did not move off bicubic (measured:
    1000 steps of AHMF 16x). He init keeps the variance through PReLU/ReLU layers (slope
    ``negative_slope``). ``zero`` lists the convs that end a residual branch: the tail, whose
    output is added to bicubic upsampling, so that training starts exactly at bicubic, and
    where residual blocks would otherwise add up to exploding features, their last conv, so
    that each block starts as the identity.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=negative_slope, nonlinearity='leaky_relu')
            nn.init.zeros_(module.bias)
    for layer in zero:
        nn.init.zeros_(layer.weight)


def count_parameters(module):
    """Return the number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
