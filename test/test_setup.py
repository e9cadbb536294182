"""The package's set-up files: package.xml, the CI script and the README agree."""

import os
import re
import xml.etree.ElementTree as ElementTree

from depth_sr_ros.checkpoint import TESTED_TORCH

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name):
    with open(os.path.join(REPO, name)) as f:
        return f.read()


def test_ci_runs_the_readme_test_command_exactly():
    ci_commands = [line for line in _read('.ci/run').splitlines()
                   if line.strip() and not line.startswith(('#', 'set ', 'cd '))]
    assert ci_commands[0].startswith('bash scripts/setup_venv.sh --test && ')
    readme_blocks = re.findall(r'```(?:bash|sh)?\n(.*?)```', _read('README.md'), re.S)
    readme_lines = {line.strip() for block in readme_blocks for line in block.splitlines()}
    for command in ci_commands:
        assert command.strip() in readme_lines, command


def test_package_xml_is_format_3_with_the_runtime_dependencies():
    root = ElementTree.fromstring(_read('package.xml'))
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'depth_sr_ros'
    exec_depends = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'message_filters', 'cv_bridge', 'python3-numpy',
            'python3-opencv', 'python3-torch'} <= exec_depends
    assert {e.text for e in root.findall('test_depend')} >= {'ament_flake8', 'ament_pep257'}
    # Every ROS package (or pip module) that the installed code imports is declared, under the
    # name rosdep knows: the Python module tf2_ros is the package tf2_ros_py.
    declared_as = {'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces',
                   'sensor_msgs': 'sensor_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
                   'std_msgs': 'std_msgs', 'geometry_msgs': 'geometry_msgs',
                   'builtin_interfaces': 'builtin_interfaces',
                   'message_filters': 'message_filters', 'tf2_ros': 'tf2_ros_py',
                   'cv_bridge': 'cv_bridge', 'launch': 'launch', 'launch_ros': 'launch_ros',
                   'ament_index_python': 'ament_index_python'}
    test_depends = {e.text for e in root.findall('test_depend')}
    for folders, depends in ((('depth_sr_ros', 'launch'), exec_depends),
                             (('test',), exec_depends | test_depends)):
        imported = set()
        for folder in folders:
            for base, _, files in os.walk(os.path.join(REPO, folder)):
                for name in files:
                    if name.endswith('.py'):
                        text = open(os.path.join(base, name)).read()
                        imported |= set(re.findall(r'^\s*(?:from|import) (\w+)', text, re.M))
        needed = {declared_as[module] for module in imported & set(declared_as)}
        assert needed <= depends, (folders, needed - depends)
    assert root.find('export/build_type').text == 'ament_python'
    # The licence declared is the licence text shipped (a release review asks for both).
    assert root.findtext('license') == 'Apache-2.0' and "license='Apache-2.0'" in _read('setup.py')
    assert _read('LICENSE').split()[:4] == ['Apache', 'License', 'Version', '2.0,']
    # rosbags has only a pip rosdep key: rosdep's pip fails on an externally managed Python
    # and bloom refuses it, so the bag tools' dependency is the README's `pip install rosbags`.
    assert not any(depend.endswith('-pip') for depend in exec_depends)
    assert 'pip install torch==2.13.0 rosbags' in ' '.join(_read('README.md').split())
    # A distribution's torch (1.13 in Debian 12) cannot read the model files: the README says
    # to skip its key and pip install the tested one.
    readme = ' '.join(_read('README.md').split())
    assert '--skip-keys python3-torch' in readme and f'torch=={TESTED_TORCH}' in readme


def test_torch_is_pinned_for_the_virtual_environment():
    pins = [line for line in _read('requirements.txt').splitlines()
            if line.startswith('torch')]
    assert pins == [f'torch=={TESTED_TORCH}']
