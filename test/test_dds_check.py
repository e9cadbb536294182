"""depth_sr_dds_check --starts: its table of failed starts, from real processes over DDS."""

import os
import subprocess
import sys

from depth_sr_ros.tools.dds_check import STARTS_TRANSPORTS
import pytest


@pytest.mark.slow  # two starts of two ROS processes
def test_starts_gives_one_row_per_transport_with_its_starts_and_failures():
    env = dict(os.environ, PYTHONFAULTHANDLER='1')
    done = subprocess.run([sys.executable, '-m', 'depth_sr_ros.tools.dds_check', '--starts', '1',
                           '--rate', '15'], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr  # the measuring processes ran and stopped cleanly
    rows = [line.split('|')[1:-1] for line in done.stdout.splitlines()
            if line.startswith('| ') and not line.startswith('| Fast DDS')]
    assert [row[0].strip() for row in rows] == list(STARTS_TRANSPORTS)
    for _, starts, failed, median in rows:
        assert int(starts) == 1 and int(failed) in (0, 1)
        # a start that connected has a time to its first image, one that did not has none
        assert (median.strip() == '-') == (int(failed) == 1)
