"""The start and clean stop shared by the package's ROS executables."""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


def wants_help(args):
    """Return True when the command line before any --ros-args asks for -h or --help."""
    args = sys.argv[1:] if args is None else list(args)[1:]
    before = args[:args.index('--ros-args')] if '--ros-args' in args else args
    return any(a in ('-h', '--help') for a in before)


def run_node(factory, program, startup_errors, args=None, usage=''):
    """
    Create a node with ``factory()``, spin it until Ctrl-C or shutdown, and clean up.

    ``-h`` / ``--help`` print ``usage`` and exit 0 without starting ROS.

    :param factory: callable that returns the node (after rclpy.init).
    :param program: name used in the one-line start-up error message.
    :param startup_errors: exception types that mean "cannot start": printed as one line,
        exit status 1, no traceback.
    :param args: command line for rclpy.init (None: sys.argv).
    :param usage: the text printed for --help.
    :return: the process exit status.
    """
    if wants_help(args):
        print(usage or f'{program}: see the README')
        return 0
    rclpy.init(args=args)
    executor = node = None
    status = 0
    try:
        # The executor exists before the node: a Ctrl-C that lands while an rclpy executor
        # is being built leaves a half-built one whose __del__ prints a traceback (seen on
        # Jazzy, where rclpy.spin built it lazily just after the node's start-up log lines).
        executor = SingleThreadedExecutor()
        node = factory()
        executor.add_node(node)
        executor.spin()
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
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    return status
