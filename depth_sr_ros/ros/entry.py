"""The start and clean stop shared by the package's ROS executables."""

import signal
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import try_shutdown

# How often the spinning thread comes back to Python, where a Ctrl-C is raised: the longest
# wait between a Ctrl-C and the start of the clean stop.
SIGNAL_CHECK_PERIOD = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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

    Ctrl-C (SIGINT) and SIGTERM stop the node in this thread alone. rclpy's own signal
    handlers are not installed: on a signal they trigger guard conditions and shut every
    context down from a thread of their own, with no lock against this thread's clean-up,
    which destroys those guard conditions (the likely cause of the rare SIGSEGV exits after
    Ctrl-C that CI saw; they did not recur in over 200 tries here).
    A second signal during the clean-up is ignored; the clean-up waits at most about 11 s
    (SIGQUIT, Ctrl-backslash, still ends a hung one).
    """
    if wants_help(args):
        print(usage or f'{program}: see the README')
        return 0
    # Set before rclpy starts, so that a process started with SIGINT ignored (`node &` in a
    # script) still stops on Ctrl-C: rclpy's C handler used to override that.
    stop_signal = _StopSignal()
    previous = {number: signal.signal(number, stop_signal) for number in STOP_SIGNALS}
    executor = node = None
    status = 0
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except RuntimeError as error:  # rcl refused the command line
            print(f'{program}: {type(error).__name__}: {error}', file=sys.stderr)
            return 1
        # The executor exists before the node: a Ctrl-C that lands while an rclpy executor
        # is being built leaves a half-built one whose __del__ prints a traceback (seen on
        # Jazzy, where rclpy.spin built it lazily just after the node's start-up log lines).
        executor = SingleThreadedExecutor()
        node = factory()
        executor.add_node(node)
        # From here on a stop signal only sets the flag, which the loop reads at least every
        # SIGNAL_CHECK_PERIOD: a KeyboardInterrupt raised at an arbitrary point of the
        # spinning can land in a destructor (rclpy's Future.__del__ during garbage
        # collection, seen in CI), which prints it as an ignored exception with a traceback.
        stop_signal.interrupts = False
        while rclpy.ok() and not stop_signal.received:
            executor.spin_once(timeout_sec=SIGNAL_CHECK_PERIOD)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C, SIGTERM or shutdown, also during start-up: a clean exit
    except Exception as error:
        if _interrupted(error):
            # The KeyboardInterrupt landed inside Python's own locking, which turned it into
            # another error: Thread.start waits on an Event, and an interrupted wait leaves
            # its lock released, so the waiter's exit raises "release unlocked lock" (seen
            # on SIGTERM while the node started its inference thread). Still a clean stop.
            pass
        elif node is None and isinstance(error, startup_errors):
            print(f'{program}: {error}', file=sys.stderr)
            status = 1
        elif node is not None and stop_signal.received:
            # The interrupt landed in rclpy's C++ while it took a message, which reported it
            # as another error with the interrupt lost ("RuntimeError: Unable to convert call
            # argument '0' to Python object", seen in CI on Ctrl-C): a clean stop as well.
            pass
        elif rclpy.ok():
            raise
        # Otherwise rclpy failed while something else shut the context down: still a clean
        # exit.
    finally:
        _ignore_stop_signals()
        try:
            if node is not None:
                stop = getattr(node, 'stop', None)
                if stop is not None:
                    stop()  # joins the node's threads, 10 s at most
                node.destroy_node()
            if executor is not None:
                executor.shutdown(timeout_sec=1.0)
            # Not rclpy.try_shutdown(): on newer rclpy it also uninstalls signal handlers,
            # which sets SIGINT and SIGTERM back to their deadly defaults for a moment.
            try_shutdown()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    return status


def _interrupted(error):
    """Return True when ``error`` was raised while a KeyboardInterrupt was being handled."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__context__
    return False


def _ignore_stop_signals():
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


class _StopSignal:
    """
    The handler of Ctrl-C and SIGTERM: note it and ignore any further one.

    While ``interrupts`` (start-up, which may block in a model load or a warm-up) it also
    raises KeyboardInterrupt, as Ctrl-C does; the spinning loop reads ``received`` instead.
    """

    def __init__(self):
        self.received = False
        self.interrupts = True

    def __call__(self, number, frame):
        self.received = True
        _ignore_stop_signals()
        if self.interrupts:
            raise KeyboardInterrupt
