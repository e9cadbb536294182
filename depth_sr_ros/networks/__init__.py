"""The guided depth super-resolution networks and the one place that builds them by name."""

from depth_sr_ros.networks.ahmf import AHMF
from depth_sr_ros.networks.pag_net import PAGNet

# Architecture name (as stored in checkpoints) -> class.
MODELS = {
    'ahmf': AHMF,
    'pag_net': PAGNet,
}


def build_model(name, **kwargs):
    """Build the network called ``name`` ('ahmf' or 'pag_net') with its keyword arguments."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f'unknown architecture {name!r}; known: {sorted(MODELS)}') from None
    return cls(**kwargs)
