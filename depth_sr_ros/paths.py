"""Where the installed package keeps its shipped files (models/, config/, launch/)."""

import os
import sysconfig

PACKAGE_NAME = 'depth_sr_ros'
# AHMF 4x trained for a depth camera's noise and holes; models/ahmf_x4.pt is the clean
# paper-protocol file (models/README.md says what each costs).
DEFAULT_MODEL = 'ahmf_x4_sensor.pt'
# The help text of every --model option and model launch argument.
MODEL_HELP = (f'model file, or the name of a shipped one in models/ (default: {DEFAULT_MODEL}, '
              'AHMF 4x for camera noise)')


def share_directory():
    """
    Return the folder holding models/, config/ and launch/.

    In a ROS install (colcon) that is the package's share directory from the ament index.
    Without one: a source checkout (pip install -e .) is the checkout itself; a pip install
    (a wheel, pip install .) puts setup.py's data files under share/depth_sr_ros of the
    environment's, or the user's, data folder. Each holds package.xml.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(PACKAGE_NAME)
    except (ImportError, LookupError, OSError):
        # LookupError: the package is not in the index (PackageNotFoundError);
        # OSError: no ament index at all (AMENT_PREFIX_PATH unset).
        pass
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = [os.path.join(data, 'share', PACKAGE_NAME)
                 for data in (sysconfig.get_path('data'),
                              sysconfig.get_path('data', f'{os.name}_user'))]
    for folder in [checkout] + installed:
        if os.path.isfile(os.path.join(folder, 'package.xml')):
            return folder
    return checkout  # nothing found: the paths under it name what is missing


def default_model_path():
    """Return the path of the shipped default model (AHMF 4x, sensor mix)."""
    return os.path.join(share_directory(), 'models', DEFAULT_MODEL)


def resolve_model_path(value):
    """
    Return the model file a model_path value names.

    '' is the default model; a bare file name that is not in the working directory is a
    shipped model (the camera configs name theirs so, e.g. ``ahmf_x8_sensor.pt``); any other
    path is itself.
    """
    if not value:
        return default_model_path()
    if os.path.basename(value) == value and not os.path.exists(value):
        return os.path.join(share_directory(), 'models', value)
    return value


def params_file_problem(path):
    """
    Return why a launch file's params_file cannot be used, or '' when it can.

    launch_ros only warns of a parameter file that is not there, and the node then starts on
    its defaults instead of the camera's settings: the launch files stop on this instead.
    """
    if os.path.isfile(path):
        return ''
    return (f"params_file '{path}' is no file (give its whole path, e.g. "
            f'$(ros2 pkg prefix {PACKAGE_NAME})/share/{PACKAGE_NAME}/config/...)')
