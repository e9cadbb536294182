"""
Launch the bundled player and depth_sr_node together: the demo without a camera.

    ros2 launch depth_sr_ros player.launch.py rate:=30.0 rig:=d435

rig:= picks the camera the player imitates (registered, aligned, d435, azure_nfov, tof); a raw
rig's depth-to-colour transform is handed to the node as its depth_to_color parameter.

Both processes use Fast DDS's shared-memory transport alone, with messages up to 4 MB whole
(depth_sr_ros.ros.ONE_COMPUTER_TRANSPORTS): camera images best effort without loss
(docs/dds.md). Every other ROS process that talks to them (rviz, ros2 topic after `ros2 daemon
stop`) needs the same FASTDDS_BUILTIN_TRANSPORTS in its shell; fastdds_builtin_transports:=
LARGE_DATA serves a viewer on another computer.
"""

from depth_sr_ros.paths import MODEL_HELP, params_file_problem
from depth_sr_ros.ros import ONE_COMPUTER_TRANSPORTS
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _nodes(context):
    """Return the player and the node for the rig named by the launch argument."""
    from depth_sr_ros.data.scene import recommended_model, rig_extrinsic
    problem = params_file_problem(LaunchConfiguration('params_file').perform(context))
    if problem:
        raise RuntimeError(problem)
    rig = LaunchConfiguration('rig').perform(context)
    model = LaunchConfiguration('model').perform(context) or recommended_model(rig)
    node_params = {'model_path': ParameterValue(model, value_type=str),  # model:=1 is text
                   'device': ParameterValue(LaunchConfiguration('device'), value_type=str)}
    extrinsic = rig_extrinsic(rig)
    if extrinsic:
        node_params['depth_to_color'] = extrinsic
    # The two processes' own environment: set for the whole launch, it would reach every
    # process a bringup starts after including this file.
    env = {'FASTDDS_BUILTIN_TRANSPORTS': LaunchConfiguration('fastdds_builtin_transports')}
    player = Node(package='depth_sr_ros', executable='depth_sr_player',
                  name='depth_sr_player', output='screen', additional_env=env,
                  parameters=[{'rate': ParameterValue(LaunchConfiguration('rate'),
                                                      value_type=float), 'rig': rig}])
    node = Node(package='depth_sr_ros', executable='depth_sr_node', name='depth_sr',
                output='screen', additional_env=env,
                parameters=[LaunchConfiguration('params_file'), node_params])
    return [player, node]


def generate_launch_description():
    """Declare the arguments, the player and the node."""
    share = FindPackageShare('depth_sr_ros')
    declared = [
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'sr.yaml']),
            description='parameter file of the node'),
        DeclareLaunchArgument('rate', default_value='30.0',
                              description='frames per second of the player'),
        DeclareLaunchArgument('model', default_value='',
                              description=MODEL_HELP + "; empty: the rig's (tof: 8x)"),
        DeclareLaunchArgument('device', default_value='auto',
                              description="'auto', 'cuda', 'cuda:N' or 'cpu'"),
        DeclareLaunchArgument('rig', default_value='registered',
                              description='camera the player imitates: registered, aligned, '
                                          'd435, azure_nfov or tof'),
        DeclareLaunchArgument('fastdds_builtin_transports', default_value=ONE_COMPUTER_TRANSPORTS,
                              description='Fast DDS transports of both processes (shared memory '
                                          'alone: only this computer sees them; LARGE_DATA for '
                                          'a viewer elsewhere; docs/dds.md)'),
    ]
    # Scoped: a bringup that includes this file gets none of its argument defaults.
    return LaunchDescription([GroupAction(declared + [OpaqueFunction(function=_nodes)],
                                          scoped=True)])
