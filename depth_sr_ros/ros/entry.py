"""The start and clean stop shared by the package's ROS executables."""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException


def run_node(factory, program, startup_errors, args=None):
    """
    Create a node with ``factory()``, spin it until Ctrl-C or shutdown, and clean up.

    :param factory: callable that returns the node (after rclpy.init).
    :param program: name used in the one-line start-up error message.
    :param startup_errors: exception types that mean "cannot start": printed as one line,
        exit status 1, no traceback.
    :param args: command line for rclpy.init (None: sys.argv).
    :return: the process exit status.
    """
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C or shutdown, also during start-up: a clean exit
    except Exception as error:
        if node is None and isinstance(error, startup_errors):
            print(f'{program}: {error}', file=sys.stderr)
            status = 1
        elif rclpy.ok():
            raise
        # Otherwise rclpy failed while Ctrl-C was shutting it down (seen: an executor taking
        # a message after the context closed): the exit is still a clean one.
    finally:
        if node is not None:
            stop = getattr(node, 'stop', None)
            if stop is not None:
                stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return status
