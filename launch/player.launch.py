"""
Launch the bundled player and depth_sr_node together: the demo without a camera.

    ros2 launch depth_sr_ros player.launch.py rate:=30.0

Both processes use Fast DDS's LARGE_DATA transports, which carry 640x480 images best effort
without loss on one machine (see the README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Declare the arguments, the player and the node."""
    share = FindPackageShare('depth_sr_ros')
    rate = LaunchConfiguration('rate')
    declared = [
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'sr.yaml']),
            description='parameter file of the node'),
        DeclareLaunchArgument('rate', default_value='30.0',
                              description='frames per second of the player'),
        DeclareLaunchArgument('model', default_value='',
                              description='model file; empty = the installed AHMF 4x'),
        DeclareLaunchArgument('device', default_value='auto',
                              description="'auto', 'cuda', 'cuda:N' or 'cpu'"),
    ]
    player = Node(package='depth_sr_ros', executable='depth_sr_player',
                  name='depth_sr_player', output='screen', parameters=[{'rate': rate}])
    node = Node(package='depth_sr_ros', executable='depth_sr_node', name='depth_sr',
                output='screen',
                parameters=[LaunchConfiguration('params_file'),
                            {'model_path': LaunchConfiguration('model'),
                             'device': LaunchConfiguration('device')}])
    return LaunchDescription(declared + [
        SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA'), player, node])
