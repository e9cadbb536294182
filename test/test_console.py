"""Every console script on Ctrl-C and on a bad number: one line, the right exit status."""

import importlib
import os
import re
import signal
import subprocess
import sys
import time

import cv2
from depth_sr_ros.checkpoint import save_checkpoint
from depth_sr_ros.paths import default_model_path, resolve_model_path
from depth_sr_ros.preprocessing import PREPROCESSING
from depth_sr_ros.tools.rig_bag import write_rig_bag
from helpers import FIXTURES, REPO, untrained
from node_graph import TINY
import pytest

READY = 'launcher: main starts'
# What a console script runs (setup.py's entry point: import main, exit with what it returns),
# with a line once the imports are done, so that the Ctrl-C lands in main as a user's does once
# the command is at work.
LAUNCHER = ('import sys; from {} import main; print(' + repr(READY) + ', file=sys.stderr, '
            'flush=True); sys.exit(main())')
WORKING = 1.5  # seconds from main's start to the Ctrl-C: loading done, or under way


def _console_scripts():
    """Return (command, module) of each console script in setup.py."""
    with open(f'{REPO}/setup.py') as f:
        return re.findall(r"'(depth_sr_\w+) = ([\w.]+):main'", f.read())


def _pairs(folder, names, scale=1):
    """Write the fixture pair under each of ``names`` in ``folder``, ``scale`` times its size."""
    for kind in ('depth', 'rgb'):
        os.makedirs(folder / kind)
        image = cv2.imread(os.path.join(FIXTURES, kind, 'cones.png'), cv2.IMREAD_UNCHANGED)
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / kind / f'{names[0]}.png'), image)
        for name in names[1:]:
            os.symlink(folder / kind / f'{names[0]}.png', folder / kind / f'{name}.png')
    return str(folder)


def _tiny(path, seed=0):
    save_checkpoint(path, untrained('pag_net', seed=seed, **TINY), 'pag_net', TINY, PREPROCESSING,
                    {'data': 'untrained, for tests'})
    return str(path)


# Per command: (module, its arguments for work that lasts well beyond the wait, the outputs a
# Ctrl-C must leave unwritten, the wait from main's start to the Ctrl-C), each made in a
# test's tmp_path.
def _evaluate(tmp):
    return ('depth_sr_ros.cli.evaluate',
            ['--model', _tiny(tmp / 'tiny.pt'), '--device', 'cpu', '--figure', '',
             '--data', _pairs(tmp / 'data', [f'{i:03d}' for i in range(300)]),
             '--json', str(tmp / 'out.json')], ['out.json'], WORKING)


def _select(tmp):
    return ('depth_sr_ros.cli.choose',
            ['--model', default_model_path(), '--data', _pairs(tmp / 'data', ['13', '27'], 4),
             '--shipped', str(tmp / 'shipped.pt'), '--install', '--json', str(tmp / 'out.json')],
            ['out.json', 'shipped.pt'], WORKING)


def _blend(tmp):
    return ('depth_sr_ros.cli.blend',
            ['--model', _tiny(tmp / 'a.pt'), '--toward', _tiny(tmp / 'b.pt', seed=1),
             '--weights', ','.join(f'{w / 100:g}' for w in range(101)),
             '--data', _pairs(tmp / 'data', ['cones']), '--names', ','.join(['cones'] * 20),
             '--out', str(tmp / 'out.pt')], ['out.pt'], WORKING)


def _train(tmp):
    return ('depth_sr_ros.cli.train',
            ['--arch', 'pag_net', '--scale', '2', '--data', FIXTURES, '--out', str(tmp / 'run'),
             '--steps', '100000', '--batch-size', '2', '--crop', '32', '--val-names', '',
             '--save-every', '100000', '--threads', '1', '--workers', '1', '--device', 'cpu'],
            ['run/state.pt', 'run/model.pt'], WORKING)


def _bag(tmp):
    write_rig_bag(str(tmp / 'in'), 'registered', 30)
    # Ctrl-C closes the output as a valid bag with the pairs done (test_bag.py), or, before the
    # first pair, leaves none.
    return ('depth_sr_ros.cli.bag',
            ['--input', str(tmp / 'in'), '--output', str(tmp / 'out'), '--device', 'cpu',
             '--model', default_model_path(), '--no-progress'], [], WORKING)


def _rig_bag(tmp):  # rendering the one frame takes seconds
    return ('depth_sr_ros.tools.rig_bag',
            ['--rig', 'd435', '--frames', '1', '--output', str(tmp / 'out')], ['out'], 0.5)


def _demo(tmp):  # one picture: Ctrl-C while the model loads
    # On a CPU with bfloat16 units main() is done in about 0.5 s; a Ctrl-C after that lands in
    # the interpreter's exit, where no command can answer it.
    return ('depth_sr_ros.tools.demo',
            ['--device', 'cpu', '--model', 'ahmf_x16.pt', '--output', str(tmp / 'out.png')],
            ['out.png'], 0.05)


def _benchmark(tmp):
    return ('depth_sr_ros.tools.benchmark',
            ['--device', 'cpu', '--models', 'ahmf:4', '--size', '640x480', '--runs', '1000',
             '--json', str(tmp / 'out.json'), '--markdown', str(tmp / 'out.md')],
            ['out.json', 'out.md'], WORKING)


def _zoo(tmp):  # evaluating the one model on the fixture's pairs, nothing written
    data = tmp / 'data'
    _pairs(data / 'middlebury30', [f'{i:02d}' for i in range(30)])
    _pairs(data / 'middlebury_full', ['art'])
    os.makedirs(tmp / 'models')
    os.symlink(resolve_model_path('ahmf_x16.pt'), tmp / 'models' / 'ahmf_x16.pt')
    return ('depth_sr_ros.tools.zoo',
            ['--data', str(data), '--models', str(tmp / 'models'), '--card', str(tmp / 'card.md'),
             '--readme', str(tmp / 'README.md'), '--accuracy', str(tmp / 'accuracy.md')],
            ['card.md', 'README.md', 'accuracy.md'], WORKING)


def _export(tmp):
    return ('depth_sr_ros.cli.export',
            ['--model', resolve_model_path('ahmf_x16.pt'), '--output', str(tmp / 'out.onnx')],
            ['out.onnx'], 0.5)


def _sigint_as_a_terminal_gives_it():
    """
    Run in the child before its program: Ctrl-C's default action, as in a terminal.

    A test run started in the background of a script (`pytest ... &`, nohup) inherits SIGINT
    ignored, and the commands would then rightly keep ignoring it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ctrl_c(process, wait, program):
    """Send SIGINT to ``process`` after ``wait`` seconds at work; return its (stdout, stderr)."""
    try:
        time.sleep(wait)
        if process.poll() is not None:
            pytest.fail(f'{program} ended before the Ctrl-C: {process.communicate()}')
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=120)
    finally:
        process.kill()


SLOW = pytest.mark.slow  # about 4 s each: the two that the issue names run in the fast set


@pytest.mark.parametrize('setup', [_evaluate, _select] + [
    pytest.param(f, marks=SLOW)
    for f in (_blend, _train, _bag, _rig_bag, _demo, _benchmark, _export, _zoo)],
    ids=lambda f: f.__name__.strip('_'))
def test_ctrl_c_stops_a_working_command_in_one_line_with_status_130(setup, tmp_path):
    module, args, outputs, wait = setup(tmp_path)
    program = next(name for name, target in _console_scripts() if target == module)
    process = subprocess.Popen([sys.executable, '-c', LAUNCHER.format(module)] + args,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=_sigint_as_a_terminal_gives_it)
    for line in process.stderr:  # the imports' warnings, if any, then READY
        if line.strip() == READY:
            break
    out, err = _ctrl_c(process, wait, program)
    assert process.returncode == 130, (out, err)
    assert 'Traceback' not in err, err
    # The stop is one line; lines before it are the command's own progress, named as its.
    lines = err.strip().splitlines()
    assert all(line.startswith(f'{program}: ') for line in lines), err
    assert sum('Ctrl-C' in line for line in lines) <= 1, err
    for output in outputs:
        assert not (tmp_path / output).exists(), output
    leftovers = [str(p) for p in tmp_path.rglob('*')
                 if p.name.endswith('.tmp') or p.name.endswith('.partial')]
    assert leftovers == []


# The wrapper's own tests send a real SIGINT, so they run in a process of their own: in the
# test process, after the in-process DDS tests, delivering SIGINT crashed it with SIGSEGV at the
# kill() (seen in CI; the signal frame could not be set up).
WRAPPER = """
import os, signal, sys, time
from depth_sr_ros.console import interruptible
before = signal.getsignal(signal.SIGINT)
if sys.argv[1] == 'ignored':
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    before = signal.SIG_IGN

@interruptible('depth_sr_x', 'what is kept')
def main(argv=None):
    assert signal.getsignal(signal.SIGINT) is not before or before is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5 if sys.argv[1] == 'default' else 0.1)  # a Ctrl-C ends the 5 s at once
    return 0

status = main([])
assert signal.getsignal(signal.SIGINT) is before, 'handler not restored'
sys.exit(status)
"""


@pytest.mark.parametrize('start,status,err', [
    ('default', 130, 'depth_sr_x: stopped by Ctrl-C; what is kept\n'), ('ignored', 0, '')])
def test_the_wrapper_turns_ctrl_c_into_one_line_and_130_unless_ignored(start, status, err):
    begun = time.monotonic()
    done = subprocess.run([sys.executable, '-c', WRAPPER, start], capture_output=True,
                          text=True, timeout=120, preexec_fn=_sigint_as_a_terminal_gives_it)
    assert (done.returncode, done.stderr) == (status, err)
    if start == 'default':
        assert time.monotonic() - begun < 5  # ended by the Ctrl-C, not by the sleep


# Per command: the arguments it needs besides, and bad values of its numeric options. Each
# must end in argparse's one error line naming the option, exit status 2, before any work.
BAD_NUMBERS = {
    'depth_sr_ros.cli.train': (['--data', FIXTURES, '--out', 'never'], [
        ('--steps', '-1'), ('--steps', 'abc'), ('--batch-size', '-2'),
        ('--crop', '0'), ('--lr', '0'), ('--lr', 'nan'), ('--lr-halve-at', '1.5'),
        ('--synthetic', '-0.1'), ('--save-every', '0'), ('--time-budget', '-5'),
        ('--seed', '-1'), ('--threads', '-2'), ('--workers', '-1'), ('--sensor', '2'),
        ('--rig', 'nan'), ('--ema', '1'), ('--scale', '3'), ('--scale', 'inf')]),
    'depth_sr_ros.cli.evaluate': (['--model', 'M', '--data', 'D'], [
        ('--shifts', 'nan'), ('--shifts', '0,left')]),
    'depth_sr_ros.cli.blend': (['--model', 'M', '--toward', 'M', '--out', 'never.pt'], [
        ('--weights', 'abc'), ('--weights', 'nan'), ('--weights', '0,-0.5'), ('--weights', '')]),
    'depth_sr_ros.cli.bag': (['--input', 'I', '--output', 'never'], [
        ('--slop', '-1'), ('--slop', 'nan'), ('--max-output-pixels', '0'),
        ('--output-size', '1xq'), ('--output-size', '-1x2')]),
    'depth_sr_ros.tools.benchmark': (['--device', 'cpu'], [
        ('--runs', '0'), ('--warmup', '-1'), ('--threads', '-2'), ('--size', '0x480'),
        ('--size', 'abc'), ('--size', '642x480'), ('--models', 'ahmf:3'), ('--models', 'x:4'),
        ('--threads-sweep', '0'), ('--dds-rates', '-1'), ('--dds-seconds', '0'),
        ('--domain-id', '300')]),
    'depth_sr_ros.tools.live_demo': ([], [
        ('--seconds', '0'), ('--seconds', 'nan'), ('--rate', '-1'), ('--domain-id', '-1')]),
    'depth_sr_ros.tools.soak': ([], [
        ('--seconds', '-1'), ('--rate', '0'), ('--warmup', '-1'), ('--max-growth-mib', 'nan'),
        ('--stall-seconds', '0'), ('--domain-id', 'abc')]),
    'depth_sr_ros.tools.dds_check': ([], [
        ('--count', '0'), ('--rate', '0'), ('--rate', 'inf'), ('--starts', '-1')]),
    'depth_sr_ros.tools.rig_bag': (['--output', 'never'], [('--frames', '0')]),
    'depth_sr_ros.cli.export': (['--model', 'M', '--output', 'never.onnx'], [('--opset', '-1')]),
}


@pytest.mark.parametrize('module,option,value', [
    (module, option, value) for module, (_, cases) in BAD_NUMBERS.items()
    for option, value in cases])
def test_a_bad_number_is_one_error_line_naming_the_option_and_exit_2(
        module, option, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing is written, and surely not into the checkout
    needed = BAD_NUMBERS[module][0]
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(module).main(needed + [f'{option}={value}'])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: ' in last and option in last, last
    assert os.listdir(tmp_path) == []


def test_the_bad_number_table_covers_every_command_with_numeric_options():
    # The commands with no numeric option: depth_sr_demo, depth_sr_select, depth_sr_zoo; the
    # node and the player take ROS parameters, checked by the node's parameter table.
    numeric = set(BAD_NUMBERS)
    others = {'depth_sr_ros.tools.demo', 'depth_sr_ros.cli.choose', 'depth_sr_ros.tools.zoo',
              'depth_sr_ros.ros.node', 'depth_sr_ros.tools.player'}
    assert {module for _, module in _console_scripts()} == numeric | others


def test_a_bad_number_ends_the_real_process_with_status_2_and_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'depth_sr_ros.cli.train', '--data', FIXTURES,
                           '--out', str(tmp_path / 'never'), '--steps=-1'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and 'Traceback' not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        ": error: argument --steps: an integer at least 0, not '-1'")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_on_the_live_demo_gives_the_summary_so_far_and_status_130(tmp_path):
    process = subprocess.Popen(
        [sys.executable, '-m', 'depth_sr_ros.tools.live_demo', '--seconds', '600', '--device',
         'cpu', '--output', str(tmp_path / 'out.png'), '--domain-id',
         str(200 + os.getpid() % 20)], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_as_a_terminal_gives_it)
    out, err = _ctrl_c(process, 45, 'depth_sr_live_demo')  # player and node started, serving
    assert process.returncode == 130, (out, err)
    assert 'Traceback' not in err, err
    assert 'depth_sr_live_demo: stopped by Ctrl-C after' in err
    # The summary covers the time watched, not the 600 s asked for.
    watched = re.search(r'super-resolved frames received in (\d+) s', out)
    assert watched and 10 <= int(watched.group(1)) < 120, out


def test_stop_processes_sends_ctrl_c_then_kills_what_ignores_it():
    from depth_sr_ros.console import stop_processes
    stoppable = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                                 preexec_fn=_sigint_as_a_terminal_gives_it)
    deaf = subprocess.Popen([sys.executable, '-c', 'import signal, time; '
                             'signal.signal(signal.SIGINT, signal.SIG_IGN); '
                             'print("ready", flush=True); time.sleep(60)'],
                            stdout=subprocess.PIPE, text=True)
    assert deaf.stdout.readline().strip() == 'ready'
    time.sleep(0.5)  # the first one's interpreter is up
    begun = time.monotonic()
    stop_processes([stoppable, deaf], timeout=1)
    assert stoppable.returncode != 0 and stoppable.returncode != -signal.SIGKILL  # Ctrl-C
    assert deaf.returncode == -signal.SIGKILL
    assert time.monotonic() - begun < 10


def test_a_ctrl_c_that_rclpy_turned_into_another_error_is_still_known():
    # rclpy can turn the KeyboardInterrupt into 'RuntimeError: Unable to convert call argument
    # ...' when it lands in its C++: the live demo's watch then ended in status 1, not 130.
    # The handler is called directly: a real SIGINT in this process would reach the handlers
    # of the rclpy contexts earlier tests made.
    import signal
    from depth_sr_ros import console
    seen = []

    @console.interruptible('x')
    def main(argv=None):
        seen.append(console.ctrl_c_received())
        return 0
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            console._first_ctrl_c(signal.SIGINT, None)
        assert console.ctrl_c_received()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert main() == 0 and seen == [False]  # each command starts without one
