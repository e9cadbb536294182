"""The launch files, executed against small stand-ins for launch and launch_ros."""

import importlib.util
import os
import sys
import types

from depth_sr_ros.ros import ONE_COMPUTER_TRANSPORTS
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Recorded:
    """Base of every stand-in: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


def _stand_ins():
    names = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'GroupAction', 'OpaqueFunction'],
        'launch.substitutions': ['EnvironmentVariable', 'LaunchConfiguration',
                                 'PathJoinSubstitution'],
        'launch_ros': [],
        'launch_ros.actions': ['Node'],
        'launch_ros.parameter_descriptions': ['ParameterValue'],
        'launch_ros.substitutions': ['FindPackageShare'],
    }
    modules = {}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for cls in classes:
            setattr(module, cls, type(cls, (Recorded,), {}))
        modules[module_name] = module
    # A launch configuration's value, from a context that is a plain dict here; every name
    # asked for is kept, to be checked against the declared arguments.
    configuration = modules['launch.substitutions'].LaunchConfiguration
    configuration.perform = lambda self, context: context[self.args[0]]
    configuration.names = set()

    def init(self, name, *args, **kwargs):
        Recorded.__init__(self, name, *args, **kwargs)
        configuration.names.add(name)
    configuration.__init__ = init
    return modules


@pytest.fixture
def load_launch(monkeypatch):
    for name, module in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)

    def load(filename):
        spec = importlib.util.spec_from_file_location(
            filename.replace('.', '_'), os.path.join(REPO, 'launch', filename))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # Everything in one scoped group: a bringup that includes the file gets none of its
        # argument defaults (launch does not scope an include: an empty use_sim_time reached
        # the files included after it, whose nodes refused it).
        group, = module.generate_launch_description().args[0]
        assert type(group).__name__ == 'GroupAction' and group.kwargs == {'scoped': True}
        return group.args[0]
    return load


def _by_type(entities, name):
    return [e for e in entities if type(e).__name__ == name]


def _config_name(substitution):
    assert type(substitution).__name__ == 'LaunchConfiguration'
    return substitution.args[0]


def _check_declarations(entities):
    # What the real launch refuses and the stand-ins would not: a default that is not text
    # (launch iterates it: "'float' object is not iterable"), and a configuration that is
    # used but never declared (an error at launch time, unless given on the command line).
    declared = _by_type(entities, 'DeclareLaunchArgument')
    for argument in declared:
        default = argument.kwargs['default_value']
        assert isinstance(default, (str, Recorded)), (argument.args[0], default)
    used = sys.modules['launch.substitutions'].LaunchConfiguration.names
    assert used and used <= {a.args[0] for a in declared}, used


def _transports_of(node):
    # FASTDDS_BUILTIN_TRANSPORTS is the process's own: a SetEnvironmentVariable would reach
    # every process a bringup starts after including the launch file.
    env = node.kwargs['additional_env']
    assert list(env) == ['FASTDDS_BUILTIN_TRANSPORTS']
    return _config_name(env['FASTDDS_BUILTIN_TRANSPORTS'])


def test_sr_launch_declares_described_arguments_and_runs_the_node(load_launch):
    entities = load_launch('sr.launch.py')
    arguments = {a.args[0]: a.kwargs for a in _by_type(entities, 'DeclareLaunchArgument')}
    assert {'params_file', 'namespace', 'depth_image', 'depth_info', 'color_image',
            'color_info', 'model', 'alignment', 'device', 'use_sim_time',
            'log_level'} <= set(arguments)
    assert all(kwargs['description'] for kwargs in arguments.values())
    default = arguments['params_file']['default_value']
    share, folder, filename = default.args[0]
    assert share.args == ('depth_sr_ros',) and (folder, filename) == ('config', 'sr.yaml')
    assert os.path.isfile(os.path.join(REPO, folder, filename))

    opaque, = _by_type(entities, 'OpaqueFunction')
    sr_yaml = os.path.join(REPO, 'config', 'sr.yaml')
    node, = opaque.kwargs['function']({'model': '', 'alignment': '', 'device': '',
                                       'use_sim_time': '', 'params_file': sr_yaml})
    _check_declarations(entities)
    assert node.kwargs['package'] == 'depth_sr_ros'
    assert node.kwargs['executable'] == 'depth_sr_node'
    params = node.kwargs['parameters']
    assert _config_name(params[0]) == 'params_file'
    # Without model:=, alignment:=, device:= and use_sim_time:=, the parameter file's stand
    # (a camera config sets its own model, a user's file may set the device or sim time).
    assert params[1] == {}
    # Typed, so that model:=123 is the text '123' and not an integer.
    node, = opaque.kwargs['function']({'model': '123', 'alignment': 'off', 'device': 'cpu',
                                       'use_sim_time': 'true', 'params_file': sr_yaml})
    sim_time = node.kwargs['parameters'][1]['use_sim_time']
    assert (_config_name(sim_time.args[0]), sim_time.kwargs['value_type']) == (
        'use_sim_time', bool)
    device = node.kwargs['parameters'][1]['device']
    assert (_config_name(device.args[0]), device.kwargs['value_type']) == ('device', str)
    model = node.kwargs['parameters'][1]['model_path']
    assert (_config_name(model.args[0]), model.kwargs['value_type']) == ('model', str)
    alignment = node.kwargs['parameters'][1]['alignment']
    assert (_config_name(alignment.args[0]), alignment.kwargs['value_type']) == ('alignment', str)
    remaps = {k: _config_name(v) for k, v in node.kwargs['remappings']}
    assert remaps == {'depth/image_raw': 'depth_image', 'depth/camera_info': 'depth_info',
                      'color/image_raw': 'color_image', 'color/camera_info': 'color_info'}
    assert _config_name(node.kwargs['namespace']) == 'namespace'
    assert node.kwargs['ros_arguments'][0] == '--log-level'
    assert _config_name(node.kwargs['ros_arguments'][1]) == 'log_level'
    assert _transports_of(node) == 'fastdds_builtin_transports'
    # launch_ros only warns of a parameter file that is not there, and the node would start
    # on its defaults instead of the camera's settings.
    missing = os.path.join(REPO, 'nowhere', 'realsense_d4xx.yaml')
    with pytest.raises(RuntimeError, match=f"params_file '{missing}' is no file"):
        opaque.kwargs['function']({'model': '', 'alignment': '', 'device': '',
                                   'use_sim_time': '', 'params_file': missing})


def test_player_launch_runs_player_and_node_on_shared_memory_and_the_rigs_extrinsic(
        load_launch):
    entities = load_launch('player.launch.py')
    transports, = [a for a in _by_type(entities, 'DeclareLaunchArgument')
                   if a.args[0] == 'fastdds_builtin_transports']
    assert transports.kwargs['default_value'] == ONE_COMPUTER_TRANSPORTS
    opaque, = _by_type(entities, 'OpaqueFunction')
    sr_yaml = os.path.join(REPO, 'config', 'sr.yaml')
    for rig, extrinsic in (('registered', False), ('d435', True)):
        player, node = opaque.kwargs['function']({'rig': rig, 'model': '', 'params_file': sr_yaml})
        _check_declarations(entities)
        assert _transports_of(player) == _transports_of(node) == 'fastdds_builtin_transports'
        assert [player.kwargs['executable'], node.kwargs['executable']] == [
            'depth_sr_player', 'depth_sr_node']
        assert player.kwargs['parameters'][0]['rig'] == rig
        params = node.kwargs['parameters'][1]
        assert ('depth_to_color' in params) == extrinsic
        if extrinsic:
            assert params['depth_to_color'] == [0.015, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        # Typed, so that model:=1 is the text '1' and not an integer.
        assert params['model_path'].args == ('ahmf_x4_sensor.pt',)
        assert params['model_path'].kwargs == {'value_type': str}
    # The ToF camera is coarser than a 4x model's LR grid: its rig runs the 8x model.
    _, node = opaque.kwargs['function']({'rig': 'tof', 'model': '', 'params_file': sr_yaml})
    assert node.kwargs['parameters'][1]['model_path'].args == ('ahmf_x8_sensor.pt',)
    _, node = opaque.kwargs['function']({'rig': 'tof', 'model': 'mine.pt', 'params_file': sr_yaml})
    assert node.kwargs['parameters'][1]['model_path'].args == ('mine.pt',)
    missing = os.path.join(REPO, 'nowhere.yaml')
    with pytest.raises(RuntimeError, match=f"params_file '{missing}' is no file"):
        opaque.kwargs['function']({'rig': 'tof', 'model': '', 'params_file': missing})


@pytest.mark.parametrize('filename', sorted(f for f in os.listdir(os.path.join(REPO, 'config'))
                                            if f.endswith('.yaml')))
def test_config_files_hold_only_declared_parameters(filename):
    from depth_sr_ros.ros.parameters import check_value, PARAMETERS
    with open(os.path.join(REPO, 'config', filename)) as f:
        params = yaml.safe_load(f)['/**/depth_sr']['ros__parameters']
    assert set(params) <= set(PARAMETERS)
    for name, value in params.items():
        default = PARAMETERS[name].default
        assert default is None or type(value) is type(default), name
        assert check_value(name, value) == '', (filename, name)  # the node's ranges


@pytest.mark.parametrize('filename', ['azure_kinect.yaml', 'generic_tof.yaml',
                                      'realsense_d4xx.yaml'])
def test_camera_configs_set_a_shipped_model_of_the_scale_their_camera_suits(filename):
    from depth_sr_ros.paths import default_model_path, resolve_model_path
    with open(os.path.join(REPO, 'config', filename)) as f:
        params = yaml.safe_load(f)['/**/depth_sr']['ros__parameters']
    path = resolve_model_path(params['model_path'])  # the installed models/ (colcon) or ours
    assert os.path.dirname(path) == os.path.dirname(default_model_path())
    assert os.path.isfile(path)
    # A 224x172 ToF under a 1280x720 colour camera: 0.7 samples per LR pixel at 4x, 2.7 at 8x.
    scale = 8 if filename == 'generic_tof.yaml' else 4
    assert os.path.basename(path).startswith(f'ahmf_x{scale}')


def test_rviz_config_shows_colour_input_output_and_points():
    with open(os.path.join(REPO, 'config', 'depth_sr.rviz')) as f:
        rviz = yaml.safe_load(f)
    displays = rviz['Visualization Manager']['Displays']
    topics = {d['Topic']['Value']: d['Class'] for d in displays if 'Topic' in d}
    assert topics == {
        '/color/image_raw': 'rviz_default_plugins/Image',
        '/depth/image_raw': 'rviz_default_plugins/Image',
        '/depth_sr/image': 'rviz_default_plugins/Image',
        '/depth_sr/points': 'rviz_default_plugins/PointCloud2'}
