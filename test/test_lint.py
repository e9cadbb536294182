"""ament_flake8 and ament_pep257 on the package's Python code, as `colcon test` runs them."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Explicit paths, so that a virtual environment inside the checkout is not linted.
PATHS = [os.path.join(REPO, p) for p in ('depth_sr_ros', 'test', 'launch', 'setup.py')]


def _run(module):
    # A separate process: flake8 forks workers, and forking this test process after other
    # tests started threads (rclpy, onnxruntime) can deadlock the children.
    return subprocess.run([sys.executable, '-m', module, *PATHS], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    result = _run('ament_flake8.main')
    assert result.returncode == 0, 'code style errors / warnings:\n' + result.stdout[-5000:]


@pytest.mark.pep257
@pytest.mark.linter
def test_pep257():
    result = _run('ament_pep257.main')
    assert result.returncode == 0, 'docstring errors / warnings:\n' + result.stdout[-5000:] \
        + result.stderr[-5000:]
