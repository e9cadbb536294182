"""
Launch depth_sr_node next to a camera driver.

    ros2 launch depth_sr_ros sr.launch.py \
        depth_image:=/camera/camera/aligned_depth_to_color/image_raw \
        depth_info:=/camera/camera/aligned_depth_to_color/camera_info \
        color_image:=/camera/camera/color/image_raw color_info:=/camera/camera/color/camera_info

config/ has parameter files for common cameras, with the matching remappings in their header.
Large images over Fast DDS (Jazzy and newer): set FASTDDS_BUILTIN_TRANSPORTS for the driver
and for this launch alike, 'SHM?max_msg_size=4MB&sockets_size=8MB' on one computer, LARGE_DATA
across computers (the fastdds_builtin_transports argument defaults to the shell's value;
Humble's Fast DDS has no such variable; docs/dds.md).
"""

from depth_sr_ros.paths import MODEL_HELP, params_file_problem
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# (name, default, description); params_file gets the installed YAML as default below.
ARGUMENTS = (
    ('namespace', '', 'namespace of the node and of its output topics'),
    ('depth_image', 'depth/image_raw', "depth image (16UC1 mm or 32FC1 m): the depth camera's "
                                       'own, or registered to the colour camera'),
    ('depth_info', 'depth/camera_info', 'camera_info of the depth image'),
    ('color_image', 'color/image_raw', 'colour image (rgb8, bgr8, rgba8, bgra8, mono8 or YUV '
                                       '4:2:2; others through cv_bridge where installed)'),
    ('color_info', 'color/camera_info', 'camera_info of the colour image'),
    ('model', '', MODEL_HELP + "; empty: the params_file's model_path, if it sets one"),
    ('alignment', '', "'auto' (find and take off the depth's offset from the colour), 'off' "
                      "or 'fixed' (the params_file's alignment_offset); empty: the "
                      "params_file's, 'auto' in sr.yaml"),
    ('device', '', "'auto' (cuda when available), 'cuda', 'cuda:N' or 'cpu'; empty: the "
                   "params_file's, else 'auto'"),
    ('use_sim_time', '', "'true': use /clock (when playing a bag with --clock); empty: the "
                         "params_file's, else false"),
    ('log_level', 'info', 'debug, info, warn, error or fatal'),
)


# Arguments that override a parameter of the parameter file only when given: argument ->
# (parameter, type) (a camera config sets its own model; the alignment, the device and the
# clock are a user's parameter file's unless given). Typed: model:=123 stays the text '123'.
GIVEN_ONLY = {'model': ('model_path', str), 'alignment': ('alignment', str),
              'device': ('device', str), 'use_sim_time': ('use_sim_time', bool)}


def _node(context):
    """Return the node; GIVEN_ONLY's arguments override the file only when given."""
    problem = params_file_problem(LaunchConfiguration('params_file').perform(context))
    if problem:
        raise RuntimeError(problem)
    config = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    overrides = {parameter: ParameterValue(config[argument], value_type=value_type)
                 for argument, (parameter, value_type) in GIVEN_ONLY.items()
                 if config[argument].perform(context)}
    return [Node(
        package='depth_sr_ros', executable='depth_sr_node', name='depth_sr',
        namespace=config['namespace'], output='screen',
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('depth/image_raw', config['depth_image']),
                    ('depth/camera_info', config['depth_info']),
                    ('color/image_raw', config['color_image']),
                    ('color/camera_info', config['color_info'])],
        ros_arguments=['--log-level', config['log_level']],
        # The node's own environment: set for the whole launch, it would reach every process
        # a bringup starts after this file (and make them shared-memory only).
        additional_env={'FASTDDS_BUILTIN_TRANSPORTS':
                        LaunchConfiguration('fastdds_builtin_transports')})]


def generate_launch_description():
    """Declare the arguments and the node."""
    share = FindPackageShare('depth_sr_ros')
    declared = [DeclareLaunchArgument(
        'params_file', default_value=PathJoinSubstitution([share, 'config', 'sr.yaml']),
        description='parameter file of the node (units and ranges are in its comments)')]
    declared += [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    declared.append(DeclareLaunchArgument(
        'fastdds_builtin_transports',
        default_value=EnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', default_value='DEFAULT'),
        description="Fast DDS transports, the same as the camera driver's: "
                    "'SHM?max_msg_size=4MB&sockets_size=8MB' on one computer, LARGE_DATA "
                    'across computers (docs/dds.md)'))
    # Scoped: a bringup that includes this file gets none of its argument defaults (an empty
    # use_sim_time reached the launch files included after it, whose nodes refused it).
    return LaunchDescription([GroupAction(declared + [OpaqueFunction(function=_node)],
                                          scoped=True)])
