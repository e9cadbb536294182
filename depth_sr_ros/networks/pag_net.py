"""
PAG-Net: progressive attention guided depth super-resolution with residual dense networks.

Bansal et al., "PAG-Net: Progressive attention guided depth super-resolution network"
(text in shared/papers/pag_net.txt). Data flow for scale s = 2^L (paper Fig. 1 and Sec. 2):

    depth (B,1,h,w) -> conv -> RDN (+ global residual) -> DF
    RGB (B,3,sH,sW) -> conv -> IF_L; IF_{j-1} = stride-2 conv(conv(IF_j))   (guidance pyramid)
    stage j = 1..L:  up = pixel-shuffle 2x(DF)
                     att = AGFE(up, conv(IF_j))          (spatial attention from depth features)
                     DF = RDN(conv3x3([up, att]))       (+ global residual)
    output = conv(DF) + bicubic(depth)

Choices where the paper is silent (it names no block sizes or activations):
- Residual dense blocks as in RDN (Zhang et al. 2018) but much smaller, because the last stage
  runs at full output resolution: ``channels=32`` feature maps, ``growth=16``, ``rdb_layers=3``
  dense layers per block, 3 blocks per RDN (the paper's number), ReLU inside the dense layers.
  With these the model has 0.41 M parameters at 4x and takes about as long as AHMF 4x per
  640x480 frame on a 2-core CPU (1.9 s against 1.7 s; with 4 dense layers per block it took
  2.8 s, since the last stage runs at full output resolution).
- The attention branches (9x1 then 1x9, and 1x9 then 9x1, channels C -> C/2 -> 1) have a ReLU
  between their two convs.
- The output adds a bicubic upsampling of the input depth (global residual learning, as in
  AHMF), so the network learns only the high-frequency correction.
"""

from depth_sr_ros.networks.common import (
    check_inputs, conv, in_float32, init_weights_, log2_scale, upsample_bicubic)
import torch
from torch import nn

SCALES = (2, 4, 8, 16)


class ResidualDenseBlock(nn.Module):
    """RDB: densely connected 3x3 conv + ReLU layers, 1x1 local fusion, local residual."""

    def __init__(self, channels, growth, num_layers):
        """
        Build the block.

        :param channels: channels in and out of the block.
        :param growth: channels added by each dense layer.
        :param num_layers: number of dense layers.
        """
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv(channels + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(num_layers))
        self.fuse = nn.Conv2d(channels + num_layers * growth, channels, 1)

    def forward(self, x):
        """Return x + fuse([x, layer outputs])."""
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return x + self.fuse(torch.cat(features, dim=1))


class ResidualDenseNetwork(nn.Module):
    """RDN (paper Fig. 2a): RDBs in series, global feature fusion, global residual."""

    def __init__(self, channels, growth, rdb_layers, num_blocks):
        """
        Build the network.

        :param channels: channels in and out.
        :param growth: growth rate of the dense layers.
        :param rdb_layers: dense layers per block.
        :param num_blocks: residual dense blocks in series (paper: 3).
        """
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualDenseBlock(channels, growth, rdb_layers) for _ in range(num_blocks))
        self.fuse = nn.Sequential(
            nn.Conv2d(num_blocks * channels, channels, 1), conv(channels, channels))

    def forward(self, x):
        """Return x + fuse([outputs of every block])."""
        outputs = []
        y = x
        for block in self.blocks:
            y = block(y)
            outputs.append(y)
        return x + self.fuse(torch.cat(outputs, dim=1))


class AttentionGuidedFeatures(nn.Module):
    """AGFE (paper Fig. 2b): spatial attention computed from depth, applied to guidance."""

    def __init__(self, channels, kernel=9):
        """
        Build the module.

        :param channels: channels of the depth and the guidance features.
        :param kernel: length of the separable attention kernels (paper: 9).
        """
        super().__init__()
        half = max(channels // 2, 1)
        pad = kernel // 2
        self.branch_vh = nn.Sequential(
            nn.Conv2d(channels, half, (kernel, 1), padding=(pad, 0)), nn.ReLU(inplace=True),
            nn.Conv2d(half, 1, (1, kernel), padding=(0, pad)))
        self.branch_hv = nn.Sequential(
            nn.Conv2d(channels, half, (1, kernel), padding=(0, pad)), nn.ReLU(inplace=True),
            nn.Conv2d(half, 1, (kernel, 1), padding=(pad, 0)))

    def forward(self, depth_feat, guide_feat):
        """Return guide_feat weighted by the attention map (B, 1, H, W) from depth_feat."""
        attention = torch.sigmoid(self.branch_vh(depth_feat) + self.branch_hv(depth_feat))
        return guide_feat * attention


class ProgressiveStage(nn.Module):
    """One 2x stage: pixel-shuffle upsampling, attentive guidance fusion, RDN refinement."""

    def __init__(self, channels, growth, rdb_layers, num_blocks):
        """Build the stage (arguments as in PAGNet)."""
        super().__init__()
        self.upsample = nn.Sequential(conv(channels, 4 * channels), nn.PixelShuffle(2))
        self.guide_conv = nn.Sequential(conv(channels, channels), nn.ReLU(inplace=True))
        self.attention = AttentionGuidedFeatures(channels)
        self.fuse = conv(2 * channels, channels)
        self.refine = ResidualDenseNetwork(channels, growth, rdb_layers, num_blocks)

    def forward(self, depth_feat, guide_feat):
        """Return depth features at twice the resolution of ``depth_feat``."""
        up = self.upsample(depth_feat)
        attended = self.attention(up, self.guide_conv(guide_feat))
        return self.refine(self.fuse(torch.cat([up, attended], dim=1)))


class PAGNet(nn.Module):
    """
    PAG-Net guided depth super-resolution network (2x, 4x, 8x or 16x).

    Input: depth (B, 1, h, w) and RGB guidance (B, 3, s*h, s*w), both normalised to about
    [0, 1]. Output: depth (B, 1, s*h, s*w). Any h and w are accepted.
    """

    scales = SCALES

    def __init__(self, scale=4, channels=32, growth=16, rdb_layers=3, num_blocks=3):
        """
        Build the network.

        :param scale: upsampling factor, 2, 4, 8 or 16 (one 2x stage per factor of 2).
        :param channels: feature channels between blocks.
        :param growth: channels added by each dense layer inside a residual dense block.
        :param rdb_layers: dense layers per residual dense block.
        :param num_blocks: residual dense blocks per RDN (paper: 3).
        """
        super().__init__()
        num_stages = log2_scale(scale, SCALES)
        self.scale = scale
        self.depth_head = conv(1, channels)
        self.depth_rdn = ResidualDenseNetwork(channels, growth, rdb_layers, num_blocks)
        self.guide_head = nn.Sequential(conv(3, channels), nn.ReLU(inplace=True))
        self.guide_down = nn.ModuleList(
            nn.Sequential(conv(channels, channels), nn.ReLU(inplace=True),
                          nn.Conv2d(channels, channels, 2, stride=2), nn.ReLU(inplace=True))
            for _ in range(num_stages - 1))
        self.stages = nn.ModuleList(
            ProgressiveStage(channels, growth, rdb_layers, num_blocks)
            for _ in range(num_stages))
        self.tail = conv(channels, 1)
        # Residual dense blocks and networks start as the identity: with He init and no
        # normalisation their sums made features of std 500 at 4x and 4e4 at 16x (measured).
        residual_ends = [m.fuse for m in self.modules() if isinstance(m, ResidualDenseBlock)]
        residual_ends += [m.fuse[-1] for m in self.modules()
                          if isinstance(m, ResidualDenseNetwork)]
        init_weights_(self, negative_slope=0.0, zero=[self.tail] + residual_ends)

    def grow_from(self, smaller):
        """
        Start from the weights of a trained PAG-Net of a smaller scale (a warm start).

        Each of the smaller network's stages keeps the guidance level it learned with: its
        last stage (full resolution) stays the last here, its first stage also fills the
        coarse stages this network adds, and likewise for the guidance downsamplers. The
        depth branch, the guidance head and the tail carry over as they are.

        :param smaller: a PAGNet of the same widths and a smaller or equal scale.
        :raises ValueError: when ``smaller`` has more stages than this network.
        """
        extra = len(self.stages) - len(smaller.stages)
        if extra < 0:
            raise ValueError(f'cannot grow a {smaller.scale}x PAG-Net into {self.scale}x')
        for name in ('depth_head', 'depth_rdn', 'guide_head', 'tail'):
            getattr(self, name).load_state_dict(getattr(smaller, name).state_dict())
        for j, stage in enumerate(self.stages):
            stage.load_state_dict(smaller.stages[max(j - extra, 0)].state_dict())
        for i, down in enumerate(self.guide_down):
            if smaller.guide_down:
                last = len(smaller.guide_down) - 1
                down.load_state_dict(smaller.guide_down[min(i, last)].state_dict())

    def forward(self, depth_lr, guide_hr):
        """Return the super-resolved depth (B, 1, s*h, s*w)."""
        check_inputs(depth_lr, guide_hr, self.scale)
        pyramid = [self.guide_head(guide_hr)]  # full resolution first
        for down in self.guide_down:
            pyramid.append(down(pyramid[-1]))
        feat = self.depth_rdn(in_float32(self.depth_head, depth_lr))
        for stage, guide_feat in zip(self.stages, reversed(pyramid)):
            feat = stage(feat, guide_feat)
        return self.tail(feat) + upsample_bicubic(depth_lr, self.scale)
