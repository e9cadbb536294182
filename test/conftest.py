"""Shared fixtures: the committed Middlebury crop and small helpers."""

import os

from depth_sr_ros.data.middlebury import load_pair
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def cones():
    """Return the 256x192 Middlebury Cones crop: 'depth' float32 disparity, 'rgb' uint8 RGB."""
    return load_pair(FIXTURES, 'cones')
