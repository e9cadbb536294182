"""The package builds and installs with colcon, as in a ROS 2 workspace, and with pip."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_PATH = pathlib.Path(REPO)
COLCON = shutil.which('colcon', path=os.path.dirname(sys.executable)) or shutil.which('colcon')
# What a clone holds besides the package: never copied into the workspace.
IGNORED = shutil.ignore_patterns('.venv*', '.git', 'build', 'install', 'log', 'runs',
                                 '__pycache__', '*.egg-info', '.pytest_cache')


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    if COLCON is None:
        pytest.fail('colcon is not installed (bash scripts/setup_venv.sh --test installs it)')
    ws = tmp_path_factory.mktemp('ws')
    shutil.copytree(REPO, ws / 'src' / 'depth_sr_ros', ignore=IGNORED)
    result = subprocess.run([COLCON, 'build', '--packages-select', 'depth_sr_ros'], cwd=ws,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return ws


def test_colcon_build_installs_package_files_models_and_scripts(workspace):
    prefix = workspace / 'install' / 'depth_sr_ros'
    share = prefix / 'share' / 'depth_sr_ros'
    assert (share / 'package.xml').is_file()
    for model in ('ahmf_x4.pt', 'ahmf_x4_sensor.pt'):
        assert (share / 'models' / model).is_file()
    # What `ros2 launch depth_sr_ros ...` and the launch files' defaults look for.
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'),
                            ('config', '*.rviz')):
        shipped = {p.name for p in (REPO_PATH / folder).glob(pattern)}
        assert shipped and shipped <= {p.name for p in (share / folder).glob(pattern)}
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' /
            'depth_sr_ros').is_file()
    for script in ('depth_sr_demo', 'depth_sr_train'):
        assert (prefix / 'lib' / 'depth_sr_ros' / script).is_file()
    site = next((prefix / 'lib').glob('python3*/site-packages'))
    assert (site / 'depth_sr_ros' / 'data' / 'sample' / 'rgb' / 'art.png').is_file()


def test_installed_package_finds_its_model_through_the_ament_index(workspace):
    # Run from / so that the checkout's own copy of the package is not importable.
    code = ('import depth_sr_ros, depth_sr_ros.paths as p; '
            'print(depth_sr_ros.__file__); print(p.default_model_path())')
    result = subprocess.run(
        ['bash', '-c', f'source {workspace}/install/setup.sh && '
                       f'{sys.executable} -c "{code}"'],
        cwd='/', capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, model = result.stdout.split()
    assert module_file.startswith(str(workspace / 'install'))
    assert model == str(workspace / 'install' / 'depth_sr_ros' / 'share' / 'depth_sr_ros' /
                        'models' / 'ahmf_x4_sensor.pt')


def test_a_pip_install_finds_its_models_without_an_ament_index(tmp_path):
    # A wheel (pip install ., pip install git+...) puts setup.py's data files under the
    # environment's share/depth_sr_ros, not beside the package as a checkout has them.
    source, wheels, env = tmp_path / 'src', tmp_path / 'wheels', tmp_path / 'env'
    shutil.copytree(REPO, source, ignore=IGNORED)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    for command in (pip + ['wheel', '-q', '--no-deps', '--no-build-isolation', '--no-index',
                           '-w', str(wheels), str(source)],
                    [sys.executable, '-m', 'venv', '--without-pip', str(env)]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    python = env / 'bin' / 'python'
    result = subprocess.run(pip + ['--python', str(python), 'install', '-q', '--no-deps',
                                   '--no-index', *map(str, wheels.glob('*.whl'))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    code = ('import depth_sr_ros.paths as p; '
            'print(p.default_model_path()); print(p.resolve_model_path("ahmf_x8.pt"))')
    environment = {k: v for k, v in os.environ.items() if k != 'AMENT_PREFIX_PATH'}
    result = subprocess.run([str(python), '-c', code], cwd='/', env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    share = env / 'share' / 'depth_sr_ros' / 'models'
    assert result.stdout.split() == [str(share / 'ahmf_x4_sensor.pt'), str(share / 'ahmf_x8.pt')]
    assert (share / 'ahmf_x4_sensor.pt').is_file()


@pytest.mark.slow
def test_colcon_test_runs_the_package_tests(workspace):
    # The quick part of the suite (linters, launch files, set-up files), as `colcon test`
    # runs it in a ROS workspace; the whole suite is what `pytest test` runs.
    result = subprocess.run(
        [COLCON, 'test', '--packages-select', 'depth_sr_ros',
         '--pytest-args', '-k', 'lint or launch or setup'],
        cwd=workspace, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = subprocess.run([COLCON, 'test-result', '--verbose'], cwd=workspace,
                             capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0, summary.stdout[-3000:]
    assert ' 0 failures' in summary.stdout and ' 0 errors' in summary.stdout
    tests = int(summary.stdout.split('Summary: ')[1].split(' tests')[0])
    assert tests >= 10
