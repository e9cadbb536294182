"""Shared fixtures: the committed Middlebury crop, a tiny model file, a running node."""

from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.data.middlebury import load_pair
from depth_sr_ros.preprocessing import PREPROCESSING
from helpers import FIXTURES, untrained
import pytest


@pytest.fixture(scope='session')
def cones():
    """Return the 256x192 Middlebury Cones crop: 'depth' float32 disparity, 'rgb' uint8 RGB."""
    return load_pair(FIXTURES, 'cones')


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    """Return the path of an untrained tiny PAG-Net 4x model file (fast on any CPU)."""
    from node_graph import TINY
    path = tmp_path_factory.mktemp('model') / 'tiny.pt'
    save_checkpoint(path, untrained('pag_net', **TINY), 'pag_net', TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    return str(path)


@pytest.fixture
def graph(model_path):
    """Return a function that starts a node_graph.Graph (closed after the test)."""
    from node_graph import Graph
    graphs = []

    def start(*overrides):
        graphs.append(Graph(model_path, overrides))
        return graphs[-1]
    yield start
    for g in graphs:
        g.close()
