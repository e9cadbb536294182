"""ament_flake8 and ament_pep257 on the package's Python code, as `colcon test` runs them."""

import os

from ament_flake8.main import main_with_errors as flake8_main
from ament_pep257.main import main as pep257_main
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Explicit paths, so that a virtual environment inside the checkout is not linted.
PATHS = [os.path.join(REPO, p) for p in ('depth_sr_ros', 'test', 'launch', 'setup.py')]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = flake8_main(argv=PATHS)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)


@pytest.mark.pep257
@pytest.mark.linter
def test_pep257():
    rc = pep257_main(argv=PATHS)
    assert rc == 0, 'Found code style errors / warnings'
