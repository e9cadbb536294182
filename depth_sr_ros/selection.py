"""
Model selection: the rule that decides, on validation images only, whether a model file ships.

The six test images (data.datasets.MIDDLEBURY_TEST) and ``middlebury_full`` are for reporting:
nothing is chosen on them. A file is judged on VALIDATION_NAMES of ``middlebury30``, which
training holds out (depth_sr_train's default --val-names), under each of VALIDATION_PROTOCOLS:
the papers' protocol, the antialiased one, Gaussian noise of sigma 5, a depth camera's noise,
and simulated rigs (data.rig: the LR input made as the node makes it from a depth camera
beside the colour camera, each image's rig drawn from a seed of its name, which training
never draws): with the small calibration error left after alignment, and with the error a
real rig has (depth 1 to 2.5 depth pixels off the colour image), before and after the node's
alignment; and the ground truth as metric depth, as a depth camera gives it (the pairs hold
disparity, its inverse). The rule (``verdict``):

1. a shipped file beats bicubic upsampling in MAE and in RMSE under every protocol;
2. a candidate replaces a shipped file only when it is no worse in MAE and in RMSE under
   every protocol, or when the shipped file breaks rule 1 and the candidate keeps it.

depth_sr_select and depth_sr_blend refuse to judge on a test image, or on a pair that a file's
training record (its starting and blended files' included: trained_on) says it learnt from.
"""

from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.data.datasets import MIDDLEBURY_TEST, MIDDLEBURY_TEST_SCENES
from depth_sr_ros.evaluation import evaluate

# Middlebury 2003's Cones and Teddy: left out of every training run (depth_sr_train
# --val-names), and never among the six test images.
VALIDATION_NAMES = ('13', '27')
# (label, protocol, noise) of evaluation.evaluate.
VALIDATION_PROTOCOLS = (
    ('papers', 'middlebury', ''),
    ('antialiased', 'antialiased', ''),
    ('sigma 5', 'middlebury', 'gaussian'),
    ('camera noise', 'middlebury', 'sensor'),
    ('simulated rig', 'middlebury', 'rig'),
    ('rig 1-2.5 px off', 'middlebury', 'rig_offset'),
    ('rig off, aligned', 'middlebury', 'rig_aligned'),
    ('metric depth (mm)', 'middlebury', 'metric'),
)
METRICS = ('mae', 'rmse')


def validation_report(predictor, pairs):
    """
    Return {protocol label: {'model': {'mae', 'rmse'}, 'bicubic': {...}}} averaged over pairs.

    :param predictor: a DepthUpsampler (a Predictor in float32 measures the weights).
    :param pairs: validation pairs from middlebury.load_pair.
    """
    methods = {'bicubic': BicubicUpsampler(predictor.scale), 'model': predictor}
    return {label: evaluate(methods, pairs, predictor.scale, protocol, noise)['average']
            for label, protocol, noise in VALIDATION_PROTOCOLS}


def losses_to_bicubic(report):
    """Return a phrase for each protocol and metric where the model is not below bicubic."""
    return [f'{label} {metric.upper()} {errors["model"][metric]:.4f} >= bicubic '
            f'{errors["bicubic"][metric]:.4f}'
            for label, errors in report.items() for metric in METRICS
            if not errors['model'][metric] < errors['bicubic'][metric]]


def worse_than(candidate, shipped):
    """Return a phrase for each protocol and metric where ``candidate`` is above ``shipped``."""
    return [f'{label} {metric.upper()} {errors["model"][metric]:.4f} > shipped '
            f'{shipped[label]["model"][metric]:.4f}'
            for label, errors in candidate.items() for metric in METRICS
            if errors['model'][metric] > shipped[label]['model'][metric]]


def verdict(candidate, shipped=None):
    """
    Return (ships, reasons) for a candidate's validation report against the shipped file's.

    ``reasons`` says why not, or what a replacement fixes; ``shipped`` None: a new file.
    """
    losses = losses_to_bicubic(candidate)
    if losses:
        return False, ['not below bicubic: ' + '; '.join(losses)]
    if shipped is None:
        return True, ['below bicubic under every protocol']
    worse = worse_than(candidate, shipped)
    if not worse:
        return True, ['below bicubic, and no worse than the shipped file, under every protocol']
    shipped_losses = losses_to_bicubic(shipped)
    if shipped_losses:
        return True, ['the shipped file is not below bicubic (' + '; '.join(shipped_losses)
                      + '); the candidate is, though worse than it in: ' + '; '.join(worse)]
    return False, ['worse than the shipped file: ' + '; '.join(worse)]


def trained_on(training):
    """
    Return the names of the pairs a model file's training record says it learnt from.

    The record's own ``train_pairs``, and those of the files it started from (depth_sr_train
    --init: ``init_training``) and was blended from (depth_sr_blend: ``blend``), all the way
    back. Files made before their trainer kept the starting file's record say only their own.
    """
    names = set(training.get('train_pairs') or ())
    blend = training.get('blend') or {}
    for parent in (training.get('init_training'), blend.get('model_training'),
                   blend.get('toward_training')):
        if isinstance(parent, dict):
            names |= trained_on(parent)
    return names


def judging_problem(names, records):
    """
    Return why ``names`` may not judge these model files, or '' when they may.

    :param names: the pairs a choice is made on.
    :param records: (label, training record) of each file judged.

    The six test images (either naming) are for reporting only, and a file judged on a pair
    it trained on is judged on what it has learnt by heart.
    """
    test = sorted(name for name in names
                  if name.lower() in MIDDLEBURY_TEST + MIDDLEBURY_TEST_SCENES)
    if test:
        return (f"{', '.join(test)}: test images, for reporting only; choose on the "
                f"validation pairs {', '.join(VALIDATION_NAMES)}")
    for label, training in records:
        seen = sorted(set(names) & trained_on(training))
        if seen:
            return (f"{label} was trained on {', '.join(seen)}: it can only be judged on pairs "
                    'it did not learn from')
    return ''
