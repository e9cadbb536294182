"""Every console script answers --help with its usage and exits 0, without starting anything."""

import importlib
import os
import re

from helpers import REPO
import pytest


def _console_scripts():
    with open(f'{REPO}/setup.py') as f:
        return re.findall(r"'(depth_sr_\w+) = ([\w.]+):main'", f.read())


def test_setup_lists_the_commands():
    assert len(_console_scripts()) >= 10


@pytest.mark.parametrize('name,module', _console_scripts())
def test_help_prints_usage_and_starts_nothing(name, module, capsys):
    main = importlib.import_module(module).main
    try:
        status = main([name, '--help']) if module.startswith(
            ('depth_sr_ros.ros.', 'depth_sr_ros.tools.player')) else main(['--help'])
    except SystemExit as done:  # argparse exits after printing the help
        status = done.code
    assert status == 0
    out = capsys.readouterr().out
    assert 'usage' in out.lower()
    # Every option has a help text: on its own line, or on the next, indented.
    lines = out.splitlines()
    bare = [line.strip() for line, after in zip(lines, lines[1:] + [''])
            if re.match(r'^  -', line) and not re.match(r'^  -.*\S\s{2,}\S', line)
            and not re.match(r'^\s{10,}\S', after)]
    assert bare == [], f'{name}: options without help'


# Each command with an output option, the arguments it needs besides, and the option.
OUTPUTS = [
    ('depth_sr_ros.cli.blend', ['--model', 'M', '--toward', 'M', '--weights', '0'], '--out'),
    ('depth_sr_ros.cli.choose', ['--model', 'M', '--data', 'D'], '--json'),
    ('depth_sr_ros.cli.evaluate', ['--model', 'M', '--data', 'D'], '--json'),
    ('depth_sr_ros.cli.evaluate', ['--model', 'M', '--data', 'D'], '--figure'),
    ('depth_sr_ros.cli.export', ['--model', 'M'], '--output'),
    ('depth_sr_ros.tools.benchmark', [], '--json'),
    ('depth_sr_ros.tools.benchmark', [], '--markdown'),
    ('depth_sr_ros.tools.demo', [], '--output'),
    ('depth_sr_ros.tools.live_demo', [], '--output'),
    ('depth_sr_ros.tools.soak', [], '--json'),
]


@pytest.mark.parametrize('module,needed,option', OUTPUTS)
def test_an_output_in_a_missing_folder_is_one_line_and_exit_2_before_any_work(
        module, needed, option, tmp_path, capsys):
    # M and D do not exist either: the output is checked first, before anything is loaded.
    main = importlib.import_module(module).main
    target = str(tmp_path / 'missing' / 'out.file')
    assert main(needed + [option, target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option} '{target}'" in err[0] and 'does not exist' in err[0]


# Outputs that would overwrite what the command reads: (module, arguments with the input as
# {input}, output option, the output given as the input itself or a file inside it).
OVERWRITES = [
    ('depth_sr_ros.cli.blend', ['--model', '{input}', '--toward', 'T', '--weights', '0'],
     '--out', '{input}'),
    ('depth_sr_ros.cli.choose', ['--model', '{input}', '--data', 'D'], '--json', '{input}'),
    ('depth_sr_ros.cli.choose', ['--model', 'M', '--data', 'D', '--shipped', '{input}',
                                 '--install'], '--json', '{input}'),
    ('depth_sr_ros.cli.evaluate', ['--model', '{input}', '--data', 'D'], '--json', '{input}'),
    ('depth_sr_ros.cli.evaluate', ['--model', 'M', '--data', '{folder}'], '--figure',
     '{input}'),
    ('depth_sr_ros.tools.benchmark', ['--model', '{input}'], '--json', '{input}'),
    ('depth_sr_ros.tools.benchmark', ['--model', '{input}'], '--markdown', '{input}'),
    ('depth_sr_ros.tools.soak', ['--model', '{input}'], '--json', '{input}'),
]


@pytest.mark.parametrize('module,needed,option,output', OVERWRITES)
def test_an_output_that_is_an_input_is_refused_before_any_work(
        module, needed, option, output, tmp_path, capsys):
    # Each used to write over its input (a model file, a depth image) at the end, exit 0.
    folder = tmp_path / 'data'
    folder.mkdir()
    given = folder / 'input.file'
    given.write_text('kept')
    names = {'input': str(given), 'folder': str(folder)}
    argv = [a.format(**names) for a in needed] + [option, output.format(**names)]
    assert importlib.import_module(module).main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0], err
    assert 'is the input' in err[0] or 'lies inside the input' in err[0], err
    assert given.read_text() == 'kept'


def test_an_output_file_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys):
    main = importlib.import_module('depth_sr_ros.cli.evaluate').main
    assert main(['--model', 'M', '--data', 'D', '--json', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--json '{tmp_path}' is a folder, not a file" in err[0]


# Picture outputs: a format with no encoder used to end in a cv2.error traceback after the work.
PICTURES = [
    ('depth_sr_ros.cli.evaluate', ['--model', 'M', '--data', 'D'], '--figure'),
    ('depth_sr_ros.tools.demo', [], '--output'),
    ('depth_sr_ros.tools.live_demo', [], '--output'),
]


@pytest.mark.parametrize('module,needed,option', PICTURES)
def test_a_picture_format_without_encoder_is_refused_before_any_work(
        module, needed, option, tmp_path, capsys):
    target = str(tmp_path / 'result.jpgx')
    assert importlib.import_module(module).main(needed + [option, target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option} '{target}': no image format" in err[0], err


def test_select_install_checks_the_shipped_folder_before_any_work(tmp_path, capsys):
    main = importlib.import_module('depth_sr_ros.cli.choose').main
    shipped = str(tmp_path / 'missing' / 'x.pt')
    assert main(['--model', 'M', '--data', 'D', '--shipped', shipped, '--install']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--shipped '{shipped}'" in err[0] and 'does not exist' in err[0]


def test_the_live_demo_says_in_one_line_that_a_bag_cannot_be_read(tmp_path, capsys):
    # It ended in a BagError traceback; and --rate with a bag did nothing.
    main = importlib.import_module('depth_sr_ros.tools.live_demo').main
    bag = str(tmp_path / 'nonexistent')
    assert main(['--bag', bag, '--output', str(tmp_path / 'x.png')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('depth_sr_live_demo: ') and bag in err[0], err
    with pytest.raises(SystemExit):
        main(['--bag', bag, '--rate', '5'])
    assert '--rate is for a rig' in capsys.readouterr().err


def test_an_empty_output_folder_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    # depth_sr_rig_bag --output '' staged its bag beside the current folder's parent, then
    # ended in rosbags' WriterError traceback.
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module('depth_sr_ros.tools.rig_bag').main
    assert main(['--rig', 'd435', '--frames', '1', '--output', '']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['depth_sr_rig_bag: the output path is empty'], err
    assert not any(name.endswith('.partial') for name in os.listdir(tmp_path.parent))


def test_the_demo_refuses_to_write_over_its_own_sample(capsys, tmp_path, monkeypatch):
    # --output depth_sr_ros/data/sample/rgb/art.png replaced the sample with the picture.
    # The demo reads a copy here, so that a regression cannot harm the package's own.
    import shutil
    from depth_sr_ros.data.middlebury import SAMPLE_DIR
    demo = importlib.import_module('depth_sr_ros.tools.demo')
    sample = str(tmp_path / 'sample')
    shutil.copytree(SAMPLE_DIR, sample)
    monkeypatch.setattr(demo, 'SAMPLE_DIR', sample)
    target = os.path.join(sample, 'rgb', 'art.png')
    before = os.path.getmtime(target)
    assert demo.main(['--output', target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'lies inside the input' in err[0], err
    assert os.path.getmtime(target) == before


def test_a_run_folder_in_the_data_or_on_a_file_is_refused_before_any_work(tmp_path, capsys):
    from helpers import FIXTURES
    main = importlib.import_module('depth_sr_ros.cli.train').main
    inside = os.path.join(FIXTURES, 'run')
    a_file = tmp_path / 'v2.pt'
    a_file.write_text('kept')
    for out, message in ((inside, 'lies inside the input'), (str(a_file), 'is a file')):
        with pytest.raises(SystemExit) as stopped:
            main(['--data', FIXTURES, '--out', out, '--steps', '0'])
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not os.path.exists(inside) and a_file.read_text() == 'kept'


def test_the_working_folder_is_no_output_folder(tmp_path, capsys, monkeypatch):
    # --output . staged the bag in itself and ended in rosbags' WriterError traceback.
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module('depth_sr_ros.tools.rig_bag').main
    for output in ('.', '..'):
        assert main(['--rig', 'd435', '--frames', '1', '--output', output, '--overwrite']) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'is or holds the working folder' in err[0], err
    assert os.listdir(tmp_path) == []
