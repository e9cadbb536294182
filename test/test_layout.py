"""The house rules: imports point one way, and the node's parameters have one source."""

import ast
import os
import subprocess
import sys

from depth_sr_ros.ros.parameters import markdown_table, PARAMETERS
from depth_sr_ros.ros.pipeline import Settings
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'depth_sr_ros')


def _imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f'{node.module}.{a.name}' for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_library_modules_never_import_commands_or_tools():
    offenders = []
    for folder, _, files in os.walk(PACKAGE):
        relative = os.path.relpath(folder, PACKAGE).split(os.sep)[0]
        if relative in ('cli', 'tools'):
            continue
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                offenders += [f'{os.path.relpath(path, ROOT)} imports {m}'
                              for m in _imports(path)
                              if m.startswith(('depth_sr_ros.cli', 'depth_sr_ros.tools'))]
    assert offenders == []


def test_commands_never_import_commands_and_launch_files_import_no_command():
    # cli/ and tools/ hold thin commands: what two of them share lives in a library module.
    offenders = []
    for folder in ('cli', 'tools'):
        for name in os.listdir(os.path.join(PACKAGE, folder)):
            if name.endswith('.py'):
                path = os.path.join(PACKAGE, folder, name)
                offenders += [f'{folder}/{name} imports {m}' for m in _imports(path)
                              if m.startswith(('depth_sr_ros.cli', 'depth_sr_ros.tools'))]
    for name in os.listdir(os.path.join(ROOT, 'launch')):
        path = os.path.join(ROOT, 'launch', name)
        offenders += [f'launch/{name} imports {m}' for m in _imports(path)
                      if m.startswith(('depth_sr_ros.cli', 'depth_sr_ros.tools'))]
    assert offenders == []


def test_the_upsampler_contract_the_baselines_and_the_geometry_load_no_torch():
    code = ('import sys; import depth_sr_ros.baselines, depth_sr_ros.geometry.registration, '
            'depth_sr_ros.evaluation; print(sorted(m for m in sys.modules if m == "torch"))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


def test_settings_and_the_yaml_take_their_defaults_from_the_parameter_table():
    for name, field in Settings.__dataclass_fields__.items():
        default = field.default_factory() if callable(field.default_factory) else field.default
        assert default == PARAMETERS[name].default, name
    with open(os.path.join(ROOT, 'config', 'sr.yaml')) as f:
        values = yaml.safe_load(f)['/**/depth_sr']['ros__parameters']
    for name, value in values.items():
        assert name in PARAMETERS, f'sr.yaml sets unknown parameter {name}'
        assert value == PARAMETERS[name].default, f'sr.yaml: {name} {value}'
    # It documents every parameter but the launch arguments and the one without a default.
    assert set(PARAMETERS) - set(values) == {'model_path', 'device', 'depth_to_color'}


def test_the_readme_parameter_table_is_the_table():
    # The README shows parameters.markdown_table() as it is: paste its output on a change.
    with open(os.path.join(ROOT, 'README.md')) as f:
        readme = f.read()
    table = markdown_table()
    assert table in readme, f'README.md: the parameter table is not\n{table}'
