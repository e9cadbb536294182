"""What the tests share besides fixtures: the data folders and an untrained network."""

import os

from depth_sr_ros.networks import build_model
import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def untrained(arch, seed=0, **kwargs):
    """
    Return a new network whose output depends on every layer and on the guidance.

    A new network returns bicubic upsampling exactly (its tail and, in PAG-Net, the last conv
    of each residual block start at zero), so tests that compare outputs could not see a
    broken guidance path or lost weights. Here those convs are redrawn small and random.
    """
    torch.manual_seed(seed)
    model = build_model(arch, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
                module.weight.normal_(std=0.01)
    return model
