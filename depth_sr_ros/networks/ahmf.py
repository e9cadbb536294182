"""
AHMF: attention-based hierarchical multi-modal fusion for guided depth super-resolution.

Zhong et al., "High-resolution depth maps imaging via attention-based hierarchical multi-modal
fusion", IEEE TIP 2021 (text in shared/papers/ahmf.txt). Data flow (paper Fig. 2):

    RGB (B,3,sH,sW) --space-to-depth x log2(s)--> F_init --m convs--> F_y^1..F_y^m
    depth (B,1,H,W) ----------------------------------m convs--> F_d^1..F_d^m
    MMAF_i(F_y^i, F_d^i) -> F_f^i             (feature enhancement + recalibration, Sec. IV)
    BHFC(F_f^1..F_f^m)   -> F_g^1..F_g^m      (forward + backward ConvGRU over levels, Sec. V)
    conv1x1([F_g^1..F_g^m]) -> pixel-shuffle x log2(s) -> conv -> + bicubic(depth)   (eq. 8)

Where the paper is silent, the choices follow the authors' public code (as summarised in the
project's issue 2): 64 channels and PReLU everywhere; the guidance downsampler is a 3x3 head conv
(3->64) then log2(s) stages of [2x space-to-depth, conv 256->64] with kernel 1/3/5 at 4x/8x/16x,
and the upsampler mirrors it with [conv 64->256, pixel shuffle]; FEB = sigmoid(conv) * PReLU(conv);
the recalibration squeezes to 32 channels and pools mean + variance (the paper says standard
deviation); the excitation gates use a sigmoid; each fused sum and each BHFC output pass a
residual block; the ConvGRUs are 2 layers deep with hidden size 64 and shared across levels.
One difference to that code: eq. (3) of the paper applies a 3x3 conv to F_init to get F_y^1, so
the guidance branch has m convs like the depth branch. That adds one 64->64 conv (37 k
parameters) to the code's counts of about 2.54 M / 3.36 M / 5.75 M at 4x / 8x / 16x.
"""

from depth_sr_ros.networks.common import (
    check_inputs, conv, in_float32, init_weights_, log2_scale, ResidualBlock, run_fused,
    upsample_bicubic)
import torch
from torch import nn

# Kernel size of the resampling convs per scale (paper Sec. VI-B).
RESAMPLE_KERNEL = {4: 1, 8: 3, 16: 5}


class GuidanceDownsampler(nn.Module):
    """Bring the HR guidance to LR size without discarding pixels (space-to-depth stages)."""

    def __init__(self, scale, channels):
        """
        Build the downsampler.

        :param scale: upsampling factor of the network (4, 8 or 16).
        :param channels: feature channels after each stage.
        """
        super().__init__()
        kernel = RESAMPLE_KERNEL[scale]
        layers = [conv(3, channels), nn.PReLU()]
        for _ in range(log2_scale(scale, RESAMPLE_KERNEL)):
            layers += [nn.PixelUnshuffle(2), conv(4 * channels, channels, kernel), nn.PReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, guide):
        """Map (B, 3, sH, sW) to (B, channels, H, W) (each stage as one conv: run_fused)."""
        return run_fused(self.body, guide)


class Upsampler(nn.Module):
    """Mirror of GuidanceDownsampler: log2(s) stages of [conv, 2x pixel shuffle]."""

    def __init__(self, scale, channels):
        """
        Build the upsampler.

        :param scale: upsampling factor (4, 8 or 16).
        :param channels: feature channels in and out.
        """
        super().__init__()
        kernel = RESAMPLE_KERNEL[scale]
        layers = []
        for _ in range(log2_scale(scale, RESAMPLE_KERNEL)):
            layers += [conv(channels, 4 * channels, kernel), nn.PixelShuffle(2), nn.PReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        """Map (B, C, H, W) to (B, C, sH, sW) (each stage as one conv: run_fused)."""
        return run_fused(self.body, x)


class FeatureEnhancement(nn.Module):
    """FEB, eqs. (10)-(11): a gated conv, sigmoid(conv(x)) * PReLU(conv(x))."""

    def __init__(self, channels):
        """
        Build the block.

        :param channels: feature channels in and out.
        """
        super().__init__()
        self.gate = conv(channels, channels)
        self.feature = conv(channels, channels)
        self.act = nn.PReLU()

    def forward(self, x):
        """Return the enhanced features."""
        return torch.sigmoid(self.gate(x)) * self.act(self.feature(x))


class FeatureRecalibration(nn.Module):
    """FRB, eqs. (12)-(16): joint squeeze of both modalities, one excitation per modality."""

    def __init__(self, channels, squeeze_channels):
        """
        Build the block.

        :param channels: feature channels of each modality.
        :param squeeze_channels: channels of the joint squeezed descriptor.
        """
        super().__init__()
        self.squeeze = nn.Sequential(conv(2 * channels, squeeze_channels), nn.PReLU())
        self.excite_depth = nn.Conv2d(squeeze_channels, channels, 1)
        self.excite_guide = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, depth_feat, guide_feat):
        """Return E_d * depth_feat + E_y * guide_feat."""
        joint = self.squeeze(torch.cat([depth_feat, guide_feat], dim=1))
        mean = joint.mean(dim=(2, 3), keepdim=True)
        spread = joint.var(dim=(2, 3), keepdim=True, unbiased=False)
        pooled = mean + spread
        weight_depth = torch.sigmoid(self.excite_depth(pooled))
        weight_guide = torch.sigmoid(self.excite_guide(pooled))
        return weight_depth * depth_feat + weight_guide * guide_feat


class MultiModalFusion(nn.Module):
    """MMAF (Fig. 3): enhance each modality, recalibrate, sum, then a residual block."""

    def __init__(self, channels, squeeze_channels):
        """
        Build the block.

        :param channels: feature channels of each modality.
        :param squeeze_channels: channels of the recalibration's joint descriptor.
        """
        super().__init__()
        self.enhance_depth = FeatureEnhancement(channels)
        self.enhance_guide = FeatureEnhancement(channels)
        self.recalibrate = FeatureRecalibration(channels, squeeze_channels)
        self.refine = ResidualBlock(channels)

    def forward(self, depth_feat, guide_feat):
        """Return the fused features F_f."""
        fused = self.recalibrate(self.enhance_depth(depth_feat), self.enhance_guide(guide_feat))
        return self.refine(fused)


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell, eqs. (18)-(21), with 3x3 convs."""

    def __init__(self, in_channels, hidden_channels):
        """
        Build the cell.

        :param in_channels: channels of the input x.
        :param hidden_channels: channels of the hidden state h.
        """
        super().__init__()
        self.gates = conv(in_channels + hidden_channels, 2 * hidden_channels)
        self.candidate = conv(in_channels + hidden_channels, hidden_channels)

    def forward(self, x, h):
        """Return the next hidden state from input x and previous state h."""
        update, reset = torch.sigmoid(self.gates(torch.cat([h, x], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([reset * h, x], dim=1)))
        return update * candidate + (1 - update) * h


class StackedConvGRU(nn.Module):
    """Several ConvGRU cells on top of each other; steps over a sequence of feature maps."""

    def __init__(self, channels, num_layers):
        """
        Build the stack.

        :param channels: channels of the inputs and of every hidden state.
        :param num_layers: number of stacked cells.
        """
        super().__init__()
        self.cells = nn.ModuleList(ConvGRUCell(channels, channels) for _ in range(num_layers))

    def forward(self, sequence):
        """Return the top cell's hidden state after each element of ``sequence``."""
        states = [torch.zeros_like(sequence[0]) for _ in self.cells]
        outputs = []
        for x in sequence:
            for i, cell in enumerate(self.cells):
                states[i] = cell(x, states[i])
                x = states[i]
            outputs.append(x)
        return outputs


class HierarchicalCollaboration(nn.Module):
    """BHFC (Sec. V, eq. 17): forward and backward ConvGRU over the levels, summed, refined."""

    def __init__(self, channels, levels, gru_layers):
        """
        Build the module.

        :param channels: feature channels of every level.
        :param levels: number of hierarchical levels m.
        :param gru_layers: depth of each ConvGRU.
        """
        super().__init__()
        self.forward_gru = StackedConvGRU(channels, gru_layers)
        self.backward_gru = StackedConvGRU(channels, gru_layers)
        self.refine = nn.ModuleList(ResidualBlock(channels) for _ in range(levels))

    def forward(self, features):
        """Map the list of fused features F_f^1..F_f^m to the refined F_g^1..F_g^m."""
        low_to_high = self.forward_gru(features)
        high_to_low = self.backward_gru(features[::-1])[::-1]
        return [res(a + b) for res, a, b in zip(self.refine, low_to_high, high_to_low)]


class AHMF(nn.Module):
    """
    AHMF guided depth super-resolution network (4x, 8x or 16x).

    Input: depth (B, 1, h, w) and RGB guidance (B, 3, s*h, s*w), both normalised to about
    [0, 1]. Output: depth (B, 1, s*h, s*w). Any h and w are accepted.
    """

    scales = tuple(RESAMPLE_KERNEL)

    def __init__(self, scale=4, channels=64, levels=4, gru_layers=2, squeeze_channels=32):
        """
        Build the network.

        :param scale: upsampling factor, 4, 8 or 16.
        :param channels: feature channels of every intermediate layer (paper: 64).
        :param levels: number of feature extraction levels m (paper: 4).
        :param gru_layers: layers of each ConvGRU in BHFC (authors' code: 2).
        :param squeeze_channels: channels of the recalibration's joint descriptor (code: 32).
        """
        super().__init__()
        log2_scale(scale, RESAMPLE_KERNEL)
        if levels < 1:
            raise ValueError(f'levels must be at least 1, got {levels}')
        self.scale = scale
        self.guide_down = GuidanceDownsampler(scale, channels)
        self.depth_layers = nn.ModuleList(
            nn.Sequential(conv(1 if i == 0 else channels, channels), nn.PReLU())
            for i in range(levels))
        self.guide_layers = nn.ModuleList(
            nn.Sequential(conv(channels, channels), nn.PReLU()) for _ in range(levels))
        self.fusions = nn.ModuleList(
            MultiModalFusion(channels, squeeze_channels) for _ in range(levels))
        self.collaboration = HierarchicalCollaboration(channels, levels, gru_layers)
        self.reduce = nn.Conv2d(levels * channels, channels, 1)
        self.upsample = Upsampler(scale, channels)
        self.tail = conv(channels, 1)
        init_weights_(self, negative_slope=0.25, zero=[self.tail])

    def forward(self, depth_lr, guide_hr):
        """Return the super-resolved depth (B, 1, s*h, s*w)."""
        check_inputs(depth_lr, guide_hr, self.scale)
        depth_feat = depth_lr
        guide_feat = self.guide_down(guide_hr)
        fused = []
        for level, (depth_layer, guide_layer, fusion) in enumerate(zip(
                self.depth_layers, self.guide_layers, self.fusions)):
            # The first layer sees the depth itself: float32 in mixed precision.
            depth_feat = in_float32(depth_layer, depth_feat) if level == 0 else depth_layer(
                depth_feat)
            guide_feat = guide_layer(guide_feat)
            fused.append(fusion(depth_feat, guide_feat))
        refined = self.collaboration(fused)
        x = self.upsample(self.reduce(torch.cat(refined, dim=1)))
        return self.tail(x) + upsample_bicubic(depth_lr, self.scale)
