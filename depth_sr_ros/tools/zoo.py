"""
depth_sr_zoo: evaluate every shipped model and regenerate the accuracy tables.

    depth_sr_zoo --data ../shared/data [--models models] [--write]

For each ``models/*.pt`` it runs the evaluation of ``depth_sr_eval`` (float32, the papers'
cropping and metrics) on:

- the six held-out images of ``middlebury30`` (02 Art, 06 Books, 14 Dolls, 18 Laundry,
  21 Moebius, 24 Reindeer), with the papers' protocol (plain bicubic downscaling), with the
  antialiased protocol (DKN, DCTNet), with the papers' protocol plus Gaussian noise of
  sigma 5 (AHMF's Table II), plus a depth camera's noise, flying pixels and holes, and with
  the LR input made as the node makes it from a simulated depth camera beside the colour
  camera (``data/rig.py``);
- the full-size Art, Books and Moebius of ``middlebury_full`` (the papers' Table I).

and on the validation pairs (``selection.validation_report``). It prints the tables. With
``--write`` it replaces the block between ``<!-- zoo: NAME -->`` and ``<!-- /zoo: NAME -->``
of each model in ``models/README.md`` (its card: the validation table and the test averages)
and in ``docs/accuracy.md`` (the per-image tables), the ``summary`` block of both READMEs
and the ``full_size`` block of ``docs/accuracy.md`` (the papers' Table I beside ours), so that
every accuracy number there comes from this one command. ``--only`` evaluates some files and
rewrites their blocks alone (the summaries need every model).
"""

import argparse
import glob
import hashlib
import os
import re
import sys

from depth_sr_ros.checkpoint import CheckpointError, load_checkpoint
from depth_sr_ros.console import interruptible
from depth_sr_ros.data.middlebury import list_pairs, load_pair
from depth_sr_ros.evaluation import compared_methods, evaluate, markdown, table
from depth_sr_ros.files import write_text_atomically
from depth_sr_ros.inference import Acceleration, device_option, Predictor
from depth_sr_ros.selection import (
    losses_to_bicubic, VALIDATION_NAMES, VALIDATION_PROTOCOLS, validation_report)

TEST_IMAGES = ('02', '06', '14', '18', '21', '24')
# (key, heading, data folder, names, protocol, noise)
BENCHMARKS = (
    ('six', "The six held-out images at third size, the papers' protocol (plain bicubic "
            'downscaling)', 'middlebury30', TEST_IMAGES, 'middlebury', ''),
    ('six_antialiased', 'The same images with the antialiased protocol (antialiased bicubic, '
                        'the DKN/DCTNet convention)', 'middlebury30', TEST_IMAGES,
     'antialiased', ''),
    ('six_noisy', "The same images, the papers' protocol with Gaussian noise of sigma 5 on the "
                  "LR depth (AHMF's Table II)", 'middlebury30', TEST_IMAGES, 'middlebury',
     'gaussian'),
    ('six_sensor', "The same images, the papers' protocol with a depth camera's noise, flying "
                   "pixels and holes on the LR depth (the holes' blocks are left out)",
     'middlebury30', TEST_IMAGES, 'middlebury', 'sensor'),
    ('six_rig', 'The same images, the LR input made as the node makes it from a simulated depth '
                'camera beside the colour camera (data.rig.simulate_rig)', 'middlebury30',
     TEST_IMAGES, 'middlebury', 'rig'),
    ('six_offset', 'The same images, simulated rigs whose depth sits 1 to 2.5 depth pixels off '
                   'the colour image (the calibration error of a real rig), registered as they '
                   'are (the node with alignment:=off)', 'middlebury30', TEST_IMAGES,
     'middlebury', 'rig_offset'),
    ('six_aligned', "The same rigs after the node's alignment (the node's default)",
     'middlebury30', TEST_IMAGES, 'middlebury', 'rig_aligned'),
    ('full', "The full-size Art, Books and Moebius, the papers' protocol (their Table I)",
     'middlebury_full', None, 'middlebury', ''),
)
# The rows of a card's test table: (benchmark key, what the row is).
TEST_ROWS = (('six', "six images, papers' protocol"), ('six_antialiased', 'antialiased'),
             ('six_noisy', 'sigma 5'), ('six_sensor', 'camera noise'),
             ('six_rig', 'simulated rig'), ('six_offset', 'rig 1-2.5 px off'),
             ('six_aligned', 'rig off, aligned'), ('full', 'full-size Art, Books, Moebius'))
# AHMF's Table I, MAE on the full-size Art, Books and Moebius (facts from the paper).
PAPER_TABLE_I = {
    4: {'bicubic': (1.15, 0.41, 0.41), 'AHMF': (0.22, 0.14, 0.14)},
    8: {'bicubic': (2.15, 0.72, 0.76), 'AHMF': (0.50, 0.30, 0.28)},
    16: {'bicubic': (4.04, 1.32, 1.37), 'AHMF': (1.04, 0.50, 0.53)},
}


def evaluate_model(path, data_root, device='cpu'):
    """Return (label, scale, {benchmark key: depth_sr_eval report}) of one model file."""
    predictor = Predictor.from_checkpoint(path, device=device,
                                          acceleration=Acceleration('float32'))
    s = predictor.scale
    methods = compared_methods(predictor)
    label = list(methods)[-1]
    reports = {}
    for key, _, folder, names, protocol, noise in BENCHMARKS:
        data = os.path.join(data_root, folder)
        pairs = [load_pair(data, n) for n in (names or list_pairs(data))]
        reports[key] = evaluate(methods, pairs, s, protocol, noise)
    validation = [load_pair(os.path.join(data_root, 'middlebury30'), n)
                  for n in VALIDATION_NAMES]
    reports['validation'] = validation_report(predictor, validation)
    return label, s, reports


def validation_block(name, report):
    """Return the markdown of a model's validation table (what selection.verdict judges)."""
    rows = [[label] + [f"{report[label][m]['mae']:.3f} / {report[label][m]['rmse']:.3f}"
                       for m in ('bicubic', 'model')] for label, _, _ in VALIDATION_PROTOCOLS]
    losses = losses_to_bicubic(report)
    return '\n'.join([
        f"Validation (model selection), pairs {', '.join(VALIDATION_NAMES)} of middlebury30, "
        f'MAE / RMSE: `depth_sr_select --model models/{name} --data '
        '../shared/data/middlebury30`', '',
        table(['protocol', 'bicubic MAE / RMSE', 'model MAE / RMSE'], rows), '',
        'Below bicubic in MAE and RMSE under every protocol.' if not losses else
        'Not below bicubic: ' + '; '.join(losses) + '.', ''])


def eval_command(name, key):
    """Return the depth_sr_eval command behind benchmark ``key``'s tables of model ``name``."""
    _, _, folder, names, protocol, noise = next(b for b in BENCHMARKS if b[0] == key)
    command = f'depth_sr_eval --model models/{name} --data ../shared/data/{folder}'
    if names:
        command += f" --names {','.join(names)}"
    if protocol != 'middlebury':
        command += f' --protocol {protocol}'
    if noise:  # depth_sr_eval's flag of each noise
        command += ' --' + {'gaussian': 'noise'}.get(noise, noise).replace('_', '-')
    return command


def file_digest(path):
    """Return the first 16 hex digits of a file's SHA-256: which file a card's tables are of."""
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def card_block(path, reports):
    """Return a model card's accuracy: its validation table and its test table, averages."""
    name = os.path.basename(path)
    label = next(m for m in reports['six']['average'] if m not in ('bicubic', 'guided filter'))

    def pair(key, method):
        average = reports[key]['average'][method]
        return f"{average['mae']:.3f} / {average['rmse']:.3f}"

    rows = [[row, pair(key, 'bicubic'), pair(key, 'guided filter'), pair(key, label),
             f"{100 * reports[key]['average'][label]['between']:.0f} % / "
             f"{100 * reports[key]['average']['bicubic']['between']:.0f} %"]
            for key, row in TEST_ROWS]
    return '\n'.join([
        'Generated by `depth_sr_zoo --data ../shared/data --write` (float32; MAE and RMSE in '
        "Middlebury's 0-255 units, metric depth in mm, lower is better) from the file whose "
        'SHA-256 begins '
        f'`{file_digest(path)}`.', '',
        validation_block(name, reports['validation']),
        'Test images (reported; the selection rule never reads them, though files chosen before '
        'it were compared on them), MAE / RMSE averaged over the images; '
        'floating edge pixels: the share of edge pixels between the two surfaces by more than '
        'a tenth of the jump. Each row is one `depth_sr_eval` command; '
        f'[docs/accuracy.md](../docs/accuracy.md#{name.removesuffix(".pt")}) has them with '
        'the per-image tables:', '',
        table(['input', 'bicubic', 'guided filter', 'model', 'floating edge pixels (model / '
               'bicubic)'], rows)])


def accuracy_block(path, reports):
    """Return a model's per-image tables for docs/accuracy.md, each with its command."""
    name = os.path.basename(path)
    lines = []
    for key, heading, *_ in BENCHMARKS:
        average = reports[key]['average']
        lines += [f'{heading}: `{eval_command(name, key)}`', '', 'MAE', '',
                  markdown(reports[key], average, 'mae'), '', 'RMSE', '',
                  markdown(reports[key], average, 'rmse'), '',
                  'Floating edge pixels (between the two surfaces by more than a tenth of the '
                  'jump)', '', markdown(reports[key], average, 'between'), '']
    return '\n'.join(lines).rstrip('\n')


# The summary's columns of RMSE below bicubic, on the six images: (the model's benchmark key,
# bicubic's, heading). The last is the node's output on a rig whose depth sits off the colour
# image (aligned, then the model) against bicubic of the depth as registered.
SUMMARY_BELOW = (('six', 'six', "papers' protocol"),
                 ('six_antialiased', 'six_antialiased', 'antialiased'),
                 ('six_noisy', 'six_noisy', 'sigma 5'),
                 ('six_sensor', 'six_sensor', 'camera noise'),
                 ('six_rig', 'six_rig', 'simulated rig'),
                 ('six_aligned', 'six_offset', 'rig 1-2.5 px off, aligned, against bicubic '
                                               'of the unaligned depth'))


def summary_row(name, label, reports):
    """Return the facts the zoo's targets are judged by, for one model."""
    def below(key, bicubic_key):
        return 100 * (1 - reports[key]['average'][label]['rmse']
                      / reports[bicubic_key]['average']['bicubic']['rmse'])

    images = reports['six']['images']
    won = sum(r[label]['mae'] < r['guided filter']['mae']
              and r[label]['rmse'] < r['guided filter']['rmse'] for r in images)
    six = reports['six']['average']
    return '| ' + ' | '.join([
        f'`{name}`', f"{six[label]['mae']:.3f} / {six[label]['rmse']:.3f}",
        *(f'{below(key, bicubic_key):.0f} %' for key, bicubic_key, _ in SUMMARY_BELOW),
        f"{100 * six[label]['between']:.0f} % / {100 * six['bicubic']['between']:.0f} %",
        f'{won} of {len(images)}',
        'yes' if not losses_to_bicubic(reports['validation']) else 'no']) + ' |'


def summary_table(rows):
    """Return the zoo's summary table."""
    header = ['model', "six images MAE / RMSE, papers' protocol",
              *(f'RMSE below bicubic: {heading}' for *_, heading in SUMMARY_BELOW),
              'floating edge pixels (model / bicubic)',
              'images where MAE and RMSE beat the guided filter',
              'validation: below bicubic under every protocol']
    return '\n'.join(['| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|', *rows])


def full_size_table(results):
    """
    Return the full-size MAE table of docs/accuracy.md.

    Per scale: our baselines, the paper's rows and every shipped model (``results``:
    [(file name, label, scale, reports)]).
    """
    def row(name, values):
        return f"| {name} | {' | '.join(values)} |"

    images = None
    lines = []
    for scale in sorted({r[2] for r in results}):
        at_scale = [r for r in results if r[2] == scale]
        full = at_scale[0][3]['full']
        images = images or [i['name'] for i in full['images']]
        paper = PAPER_TABLE_I.get(scale, {})
        lines.append(row(f'bicubic (ours) | {scale}x',
                         [f"{i['bicubic']['mae']:.3f}" for i in full['images']]))
        if 'bicubic' in paper:
            lines.append(row(f"bicubic (paper's Table I) | {scale}x",
                             [f'{v:.2f}' for v in paper['bicubic']]))
        lines.append(row(f'guided filter (ours) | {scale}x',
                         [f"{i['guided filter']['mae']:.3f}" for i in full['images']]))
        for name, label, _, reports in at_scale:
            lines.append(row(f'**`{name}`** | {scale}x',
                             [f"**{i[label]['mae']:.3f}**"
                              for i in reports['full']['images']]))
        if 'AHMF' in paper:
            lines.append(row(f"AHMF (paper's Table I) | {scale}x",
                             [f'{v:.2f}' for v in paper['AHMF']]))
    head = ['| method | scale | ' + ' | '.join(images) + ' |', '|---|---|'
            + '---|' * len(images)]
    return '\n'.join(head + lines)


def replace_block(text, key, body):
    """Return ``text`` with the block between the markers of ``key`` replaced by ``body``."""
    pattern = re.compile(rf'(<!-- zoo: {re.escape(key)} -->\n).*?(<!-- /zoo: '
                         rf'{re.escape(key)} -->)', re.S)
    if not pattern.search(text):
        raise KeyError(f'no <!-- zoo: {key} --> ... <!-- /zoo: {key} --> block')
    return pattern.sub(lambda m: m.group(1) + (body + '\n' if body else '') + m.group(2), text)


def missing_data(data_root):
    """Return what the zoo's benchmarks need from ``data_root`` and it lacks, or ''."""
    wanted = {}
    for _, _, folder, names, _, _ in BENCHMARKS:
        wanted.setdefault(folder, set()).update(names or ())
    wanted['middlebury30'].update(VALIDATION_NAMES)
    for folder, names in wanted.items():
        path = os.path.join(data_root, folder)
        try:
            found = set(list_pairs(path))
        except FileNotFoundError:  # no depth/ or rgb/ folder
            found = set()
        if not found or names - found:
            lacking = ', '.join(sorted(names - found)) if found else 'depth/ and rgb/ pairs'
            return f'{path}: no {lacking}'
    return ''


def _network_and_scale(path):
    """Sort key of a model file name NETWORK_xSCALE.pt: by network, then by scale."""
    name, _, scale = os.path.basename(path).removesuffix('.pt').rpartition('_x')
    return (name, int(scale)) if scale.isdigit() else (name, 0)


@interruptible('depth_sr_zoo')
def main(argv=None):
    """Entry point of depth_sr_zoo."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', required=True,
                        help='folder holding middlebury30/ and middlebury_full/')
    parser.add_argument('--models', default='models', help='folder of the shipped *.pt files')
    parser.add_argument('--card', default='models/README.md', help='the model cards')
    parser.add_argument('--readme', default='README.md', help='the README with the summary')
    parser.add_argument('--accuracy', default='docs/accuracy.md',
                        help="the per-image tables of every model's benchmarks")
    parser.add_argument('--only', default='', help='comma-separated file names to evaluate, '
                                                   "'.pt' optional (the others keep their "
                                                   'blocks)')
    parser.add_argument('--device', default='cpu', type=device_option,
                        help="'cpu', 'cuda' or 'cuda:N' (default cpu)")
    parser.add_argument('--write', action='store_true',
                        help='rewrite the blocks in --card, --readme and --accuracy (else '
                             'print them)')
    args = parser.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.models, '*.pt')), key=_network_and_scale)
    if args.only:
        names = [os.path.basename(p) for p in paths]
        only = [n if n.endswith('.pt') else n + '.pt' for n in args.only.split(',') if n]
        unknown = [n for n in only if n not in names]
        if unknown:
            parser.error(f"--only: no {', '.join(unknown)} in {args.models} (there: "
                         f"{', '.join(names) or 'none'})")
        paths = [p for p in paths if os.path.basename(p) in only]
    if not paths:
        print(f'depth_sr_zoo: no model files in {args.models}', file=sys.stderr)
        return 1
    keys = [os.path.basename(p).removesuffix('.pt') for p in paths]
    # (document, block) pairs this run rewrites; every block must be there before hours of
    # evaluation.
    wanted = [('card', k) for k in keys] + [('accuracy', k) for k in keys]
    if not args.only:
        wanted += [('card', 'summary'), ('readme', 'summary'), ('accuracy', 'full_size')]
    texts = {}
    if args.write:
        for document, key in wanted:
            try:
                if document not in texts:
                    with open(getattr(args, document)) as f:
                        texts[document] = f.read()
                replace_block(texts[document], key, '')
            except (KeyError, OSError) as error:
                reason = error.args[0] if isinstance(error, KeyError) else error.strerror
                print(f'depth_sr_zoo: {getattr(args, document)}: {reason}', file=sys.stderr)
                return 1
    problem = missing_data(args.data)
    if problem:
        print(f'depth_sr_zoo: {problem}', file=sys.stderr)
        return 2
    for path in paths:  # each model file loads, before hours of evaluation
        try:
            load_checkpoint(path)
        except CheckpointError as error:
            print(f'depth_sr_zoo: {error}', file=sys.stderr)
            return 2
    results = []
    for path, key in zip(paths, keys):
        name = os.path.basename(path)
        print(f'depth_sr_zoo: evaluating {name}', file=sys.stderr)
        label, scale, reports = evaluate_model(path, args.data, args.device)
        results.append((name, label, scale, reports))
        blocks = {('card', key): card_block(path, reports),
                  ('accuracy', key): accuracy_block(path, reports)}
        print(f"## {name}\n\n{blocks['card', key]}\n\n{blocks['accuracy', key]}\n")
        for (document, block), body in blocks.items():
            if args.write:
                texts[document] = replace_block(texts[document], block, body)
    if not args.only:
        summary = summary_table([summary_row(n, label, r) for n, label, _, r in results])
        full = full_size_table(results)
        print(f'{summary}\n\n{full}')
        if args.write:
            texts['card'] = replace_block(texts['card'], 'summary', summary)
            texts['readme'] = replace_block(texts['readme'], 'summary', summary)
            texts['accuracy'] = replace_block(texts['accuracy'], 'full_size', full)
    for document, text in texts.items():
        write_text_atomically(getattr(args, document), text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
