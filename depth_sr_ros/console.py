"""
What every console script shares: how Ctrl-C ends it, and how it reads numbers.

``interruptible`` wraps a command's main: Ctrl-C (SIGINT) ends it with one line on stderr and
exit status 130, after its own clean-up. ``stop_processes`` ends the processes a command
started the same way: Ctrl-C first, then kill. ``number``, ``numbers`` and ``image_size`` are
argparse types for numeric options with bounds: a bad value (not a number, nan, inf, out of
bounds) is argparse's usage line and one error line naming the option, exit status 2, before
any work.
"""

import argparse
import functools
import math
import signal
import subprocess
import sys
import threading

INTERRUPTED = 130  # 128 + SIGINT: the shell's exit status for a command ended by Ctrl-C


def interruptible(program, note=''):
    """
    Return a decorator for a command's ``main(argv=None)`` that ends it cleanly on Ctrl-C.

    The first Ctrl-C raises KeyboardInterrupt where the command is, so that its ``finally``
    and ``with`` blocks run (temporary files removed, outputs closed); further ones are
    ignored until main returns, so that they cannot break that clean-up (Ctrl-backslash,
    SIGQUIT, still ends a hung one). A KeyboardInterrupt that main does not handle itself
    becomes one line on stderr, '``program``: stopped by Ctrl-C' followed by ``note``, and
    the exit status 130. A process started with SIGINT ignored (``command &`` in a script)
    keeps ignoring it.
    """
    def decorate(main):
        @functools.wraps(main)
        def wrapped(argv=None):
            _CTRL_C.clear()
            previous = _catch_first_ctrl_c()
            try:
                return main(argv)
            except KeyboardInterrupt:
                print(f'{program}: stopped by Ctrl-C' + (f'; {note}' if note else ''),
                      file=sys.stderr)
                return INTERRUPTED
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
        return wrapped
    return decorate


def _catch_first_ctrl_c():
    """Install _first_ctrl_c for SIGINT where Python's own handler is; return the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread may set signal handlers
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return None  # ignored, or handled by someone else: leave it so
    signal.signal(signal.SIGINT, _first_ctrl_c)
    return previous


_CTRL_C = threading.Event()  # set by _first_ctrl_c


def ctrl_c_received():
    """
    Return whether a Ctrl-C reached an interruptible command's handler.

    rclpy can turn the KeyboardInterrupt into another error when it lands in its C++ while a
    message is converted ("RuntimeError: Unable to convert call argument '0' to Python
    object"): a caller that sees such an error after a Ctrl-C stops as on Ctrl-C.
    """
    return _CTRL_C.is_set()


def _first_ctrl_c(number, frame):
    """Ignore any further Ctrl-C, then raise KeyboardInterrupt as Python's own handler does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _CTRL_C.set()
    raise KeyboardInterrupt


def process_memory_mib(pid='self', key='VmRSS'):
    """
    Return a memory figure of process ``pid`` from Linux's /proc/<pid>/status, MiB, or None.

    ``key``: 'VmRSS' (resident now) or 'VmHWM' (its peak since the start or the last reset).
    """
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop_processes(processes, timeout):
    """
    Stop the running ones of ``processes`` (subprocess.Popen): Ctrl-C, then kill.

    Each gets SIGINT, so that it leaves cleanly (a killed DDS participant leaves its shared
    memory behind); one still running ``timeout`` seconds later is killed. All are reaped.
    """
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def number(kind=float, low=None, high=None, above=None, below=None):
    """
    Return an argparse ``type`` for one finite number of ``kind`` (int or float) within bounds.

    ``low`` and ``high`` are inclusive bounds, ``above`` and ``below`` exclusive ones; None is
    no bound. Anything else is an ArgumentTypeError, which argparse prints as
    "argument --NAME: an integer at least 1, not '-1'" and exits with status 2.
    """
    bounds = (low, high, above, below)

    def parse(text):
        value = _read(kind, text, bounds)
        if value is None:
            raise argparse.ArgumentTypeError(f"{_expected(kind, bounds)}, not '{text}'")
        return value
    parse.__name__ = kind.__name__  # argparse names the type by it in some messages
    return parse


def numbers(kind=float, low=None, high=None, above=None, below=None):
    """
    Return an argparse ``type`` for comma-separated numbers, each as ``number`` reads it.

    The value is a list; empty items are left out, so '' is the empty list.
    """
    bounds = (low, high, above, below)

    def parse(text):
        values = [_read(kind, item, bounds) for item in text.split(',') if item.strip()]
        if None in values:
            raise argparse.ArgumentTypeError(
                f"comma-separated {_expected(kind, bounds, plural=True)}, not '{text}'")
        return values
    parse.__name__ = f'{kind.__name__} list'
    return parse


def one_of(choices, many=False):
    """
    Return an argparse ``type`` for a name among ``choices``; ``many``: comma-separated names.

    The value is the text as given. Anything else is an ArgumentTypeError, which argparse
    prints as "argument --NAME: one of 'auto', 'float32', 'bfloat16', not 'float16'" and
    exits with status 2.
    """
    choices = tuple(choices)

    def parse(text):
        names = text.split(',') if many else [text]
        if not all(name in choices for name in names):
            listed = ', '.join(repr(choice) for choice in choices)
            raise argparse.ArgumentTypeError(
                f"{'comma-separated names' if many else 'one'} of {listed}, not '{text}'")
        return text
    parse.__name__ = 'name list' if many else 'name'
    return parse


def image_size(low=0):
    """
    Return an argparse ``type`` for an image size 'WIDTHxHEIGHT' (or 'WIDTH,HEIGHT').

    The value is (width, height), two integers of at least ``low``.
    """
    def parse(text):
        parts = text.lower().replace('x', ',').split(',')
        values = [_read(int, part, (low, None, None, None)) for part in parts]
        if len(values) != 2 or None in values:
            raise argparse.ArgumentTypeError(
                f"WIDTHxHEIGHT, two integers at least {low}, not '{text}'")
        return tuple(values)
    parse.__name__ = 'size'
    return parse


def _read(kind, text, bounds):
    """Return ``kind(text)`` if it is finite and within ``bounds``, else None."""
    low, high, above, below = bounds
    try:
        value = kind(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if ((low is not None and value < low) or (high is not None and value > high)
            or (above is not None and value <= above) or (below is not None and value >= below)):
        return None
    return value


def _expected(kind, bounds, plural=False):
    """Return what a value must be, in words: 'an integer at least 1', 'a finite number'..."""
    low, high, above, below = bounds
    what = {(int, False): 'an integer', (int, True): 'integers',
            (float, False): 'a finite number', (float, True): 'finite numbers'}[kind, plural]
    lower = f'[{low:g}' if low is not None else (f'({above:g}' if above is not None else '')
    upper = f'{high:g}]' if high is not None else (f'{below:g})' if below is not None else '')
    if lower and upper:
        return f'{what} within {lower}, {upper}'  # an interval: [0, 1), (0, 10]
    if lower:
        return f"{what} {'at least' if low is not None else 'above'} {lower[1:]}"
    if upper:
        return f"{what} {'at most' if high is not None else 'below'} {upper[:-1]}"
    return what
