"""
Online alignment of registered depth to the colour image, from their edges.

Real rigs are never perfectly calibrated: after registration their depth sits some pixels off
the colour image (factory calibration, rolling shutters, time offsets). Depth edges are where
the colour image has edges too, so the offset is where the two edge maps correlate best.

``edge_correlation`` correlates one frame's edge maps (by FFT, within a bounded search range)
on the LR grid, or on a finer grid (``finer_grid``) where the node registers the depth itself.
``Aligner`` pools the correlation over frames, since the offset belongs to the rig, not to a
frame: every ``every``-th frame adds its correlation to a moving average over about MEMORY
correlated frames (so a rig bumped after hours is found about as fast as one bumped after a
minute), and once the pooled peak is clear (MIN_PEAK_SIGMA, MIN_PEAK_RATIO) and strong
(MIN_PEAK_VALUE), at least
MIN_CORRECTION and MIN_CORRECTION_OUTPUT away and clearly better than the current registration
(MIN_PEAK_GAIN), the
residual offset is taken into the correction that the registration applies (the LR grid's
principal point moved by it, so no depth is resampled or mixed). It then starts pooling again
on the corrected frames, which on a rig that is right finds about zero and changes nothing. A
scene without depth edges gives no clear peak and no change.
"""

import dataclasses
import math

import cv2
import numpy as np

# A pooled peak counts when it stands this many standard deviations above the correlation
# window's mean, and this many times above the best value more than two pixels from it.
MIN_PEAK_SIGMA = 3.0
MIN_PEAK_RATIO = 1.2
# ... and the peak itself, the pooled mean correlation of the two standardised edge maps, is at
# least this. Sigma and ratio do not see how strong a correlation is, only its shape: a wall
# without a depth edge, its depth's noise against the colour's texture, peaks at 0.0002 to
# 0.02, often with a shape that passes them, and was moved up to the search bound. The
# offsets that the other thresholds take on the simulated rigs of the training pairs peak at
# 0.10 and more at 2x to 8x, so the floor moves none fewer there (`python
# scripts/alignment_thresholds.py --data ../shared/data/middlebury30 --scale S`, 2026-12-05);
# at 16x it leaves 5 of 49 (4 of them would have lowered the error; offset rigs' error x1000
# 73.08 against 72.66 without the floor).
MIN_PEAK_VALUE = 0.05
# A correction is taken only when the peak also stands this many standard deviations above the
# correlation at the current registration (zero shift): moving must match the edges clearly
# better than staying. Colour edges beside the depth edges (texture, shadows) give broad peaks
# that the current registration matches almost as well. The three thresholds were chosen with
# scripts/alignment_thresholds.py (the 22 training pairs of middlebury30, ten simulated rigs
# each with and without a real rig's offset, one still frame; these counts, and those below,
# come from the rig simulation before commit 8445991). Offset rigs moved back with a
# lower error, against 3.5 and 1.3 without the gain test: at 4x 96 of 220 against 71, while
# calibrated rigs moved 4 times against 7 (without the gain test, 3.0 and 1.2 alone move 115
# and 10); at 8x 74 against 47 (calibrated 1 and 1); at 16x 10 against 1 (none); at 2x 122
# against 121 (calibrated 27 against 37), though the error left on the 2x offset rigs is 8 %
# higher.
MIN_PEAK_GAIN = 0.8
# A correction is taken only when the pooled residual is at least this many pixels of the
# grid the edges are matched on. On the LR grid the edge match itself is off by up to about
# 0.7 LR pixel on correctly calibrated scene rigs (colour edges that are no depth edges:
# texture, shadows), so smaller offsets stay as they are: a calibrated rig is left unchanged.
# On the finer grid (finer_grid) the player's calibrated rigs are left unchanged too
# (test_alignment.py).
MIN_CORRECTION = 1.0
# ... and at least this many output pixels. At 2x an LR pixel is 2 output pixels, and on the
# player's calibrated d435 and tof rigs the pooled edge match sat 1.3 to 1.4 LR pixels off
# (colour edges that are no depth edges), so the aligner moved them, which the real-sensor issue
# forbids, and doubled their registration error (test_alignment.py). The floor costs the
# simulated rigs of the training pairs something: `python scripts/alignment_thresholds.py
# --data ../shared/data/middlebury30 --scale 2 --rigs 4` (2026-12-05) moves 44 of 88 offset
# rigs back (error x1000 10.92; 55 and 10.06 without the floor, 16.18 unmoved) and 4 of 88
# calibrated ones (6.35; 10 and 6.31 without, 6.13 unmoved). At 4x and more one pixel of the
# matching grid is at least 4 output pixels already. The Azure Kinect rig at 2x is still moved
# (2.0 and 1.1 LR px) when shown the first four of its eight views (depth_edges says why); over
# all eight the pooled match stays below MIN_PEAK_RATIO and nothing moves.
MIN_CORRECTION_OUTPUT = 3.0
# The aligner correlates every so many frames (its cost is then spread over them) ...
EVERY = 5
# ... on a matching grid of up to this many pixels (640x360: 2x of 720p colour, 4x of 1440p).
# A larger grid is correlated proportionally more rarely (look_every), so that a look's cost,
# which grows with the grid, stays spread to about the same per frame: at 2x of 1080p colour
# (960x540) every 12th frame.
LOOK_PIXELS = 640 * 360
# The pooled correlation is a moving average over about this many correlated frames (at 30
# frames/s and EVERY, 5 s): a frame's weight halves after 0.7 MEMORY later ones. A rig
# bumped after a long calibrated run is then corrected within about MEMORY frames; a sum
# over every frame would need as many new frames as it had pooled before.
MEMORY = 30
# The largest offset searched and applied, output pixels (the node's alignment_max_shift).
MAX_SHIFT = 32.0


def lr_max_shift(max_shift, scale):
    """
    Return the largest offset searched, LR pixels, of ``max_shift`` output pixels.

    Rounded down to whole pixels of the grid the node matches on at ``scale`` (finer_grid), so
    that no offset beyond ``max_shift`` is searched or applied; below one such pixel nothing is
    searched.
    """
    finer = finer_grid(scale)
    return search_window(max_shift / scale, finer) / finer


def search_window(max_shift, finer):
    """Return the whole pixels of the grid ``finer`` times finer than LR within ``max_shift``."""
    return math.floor(max_shift * finer + 1e-9)  # 1e-9: 0.29 * 100 is 28.999999999999996


def lr_min_correction(scale):
    """Return the smallest correction taken, LR pixels: MIN_CORRECTION_OUTPUT output pixels."""
    return MIN_CORRECTION_OUTPUT / scale


def matching_grid(lr, finer):
    """Return the camera of the grid ``finer`` times finer than LR grid ``lr`` (finer_grid)."""
    return lr if finer == 1 else lr.resized(lr.width * finer, lr.height * finer)


def finer_grid(scale):
    """
    Return how many times finer than the LR grid the node matches depth it registers itself.

    At 8x and 16x an LR pixel is 8 or 16 output pixels and real offsets are often smaller, so
    the depth is matched on a grid a quarter of the output's resolution: twice as fine as the
    LR grid at 8x, four times at 16x. `depth_sr_eval --model models/ahmf_x8.pt --data
    ../shared/data/middlebury30 --names` (the 22 training pairs) `--rig-aligned`, one rig 1
    to 2.5 depth pixels off per image: on the LR grid the alignment moved none (bicubic RMSE
    13.34, as --rig-offset), on the grid twice as fine 6 of 22 (bicubic RMSE 12.12; AHMF 8x
    13.16 -> 11.87). At 16x `scripts/alignment_thresholds.py --data ../shared/data/middlebury30
    --scale 16` (ten rigs per training pair; 2026-12-04, commit 0148617 with finer_grid
    patched): on the grid twice as fine 9 of 220 offset rigs moved, four times as fine 44
    (43 with a lower error; mean error 78.10 -> 73.29) while 2 of 220 calibrated rigs moved
    (none before; error 4.66 -> 5.87, the trade the thresholds make at 4x). `depth_sr_eval
    --model models/ahmf_x16.pt` on the 22 training pairs `--rig-aligned` (commit 0996c72):
    5 of 22 moved, bicubic RMSE 18.29 (19.24 unaligned); the same with finer_grid patched to 2
    moved none, to 8 one (RMSE 18.96). At 2x and 4x an LR pixel is at most 4 output pixels,
    and the LR grid stays, as does depth that arrives on the LR grid.
    """
    return max(1, scale // 4)


def look_every(shape, every=EVERY):
    """Return every how many frames the aligner correlates on a matching grid of ``shape``."""
    pixels = shape[0] * shape[1]
    return every if pixels <= LOOK_PIXELS else math.ceil(every * pixels / LOOK_PIXELS)


def whole_pixels(offset):
    """
    Return an offset (dx, dy) moved to the nearest whole pixels, halves right and down.

    Depth that arrives on the LR grid is moved by whole LR pixels, never resampled; halves go
    the way the registration lands a point halfway between two pixel centres.
    """
    return tuple(float(math.floor(v + 0.5)) for v in offset)


def _edges(image):
    """Return the gradient magnitude of ``image``, standardised (zero mean, unit deviation)."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.sqrt(gx * gx + gy * gy)
    deviation = float(magnitude.std())
    return (magnitude - magnitude.mean()) / deviation if deviation > 0 else None


def depth_edges(lr_depth):
    """
    Return the standardised edge map of LR depth (NaN = none), or None without edges.

    Relative depth (the log), so that a step means the same near and far. Holes are filled a
    pixel per step from their rim, each pixel with the farthest depth beside it, so both
    surfaces grow into a hole between them and the edge lands in its middle. That is right for
    the gaps a sensor leaves on both sides of an edge (flying and lost pixels). An occlusion
    shadow, background the colour camera sees and the depth camera does not, lies on one side
    only, and there the edge moves into the shadow by half its width: on the player's
    Azure Kinect rig at 2x, about one LR pixel along the baseline. Filling each hole pixel with
    the farthest depth within a few pixels instead removes that, but the aligner then found
    fewer of the offsets of the simulated rigs (data.rig, whose edge losses leave two-sided
    gaps) at every scale, so the fill stays.
    """
    valid = np.isfinite(lr_depth) & (lr_depth > 0)
    if valid.mean() < 0.2:
        return None
    filled = np.where(valid, lr_depth, -np.inf).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(32):  # grow the farthest depth into the holes, a pixel per step
        missing = ~np.isfinite(filled)
        if not missing.any():
            break
        filled[missing] = cv2.dilate(filled, kernel, borderType=cv2.BORDER_REPLICATE)[missing]
    filled[~np.isfinite(filled)] = float(np.median(lr_depth[valid]))
    return _edges(np.log(filled).astype(np.float32))


def color_edges(color, shape):
    """Return the standardised edge map of an RGB/BGR or grey image on a grid of ``shape``."""
    grey = color if color.ndim == 2 else cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
    if grey.shape != tuple(shape):
        grey = cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return _edges(grey.astype(np.float32))


def edge_correlation(depth_map, color_map, max_shift):
    """
    Return the correlation of two edge maps for every shift within ``max_shift`` pixels.

    Element [max_shift + dy, max_shift + dx] is the mean of depth_map(x, y) *
    color_map(x - dx, y - dy): it peaks at the (dx, dy) by which depth sits right of and below
    the colour. Computed by FFT (zero-padded, so no wrap-around).
    """
    h, w = depth_map.shape
    size = (cv2.getOptimalDFTSize(h + max_shift), cv2.getOptimalDFTSize(w + max_shift))
    depth_f = np.fft.rfft2(depth_map, size)
    color_f = np.fft.rfft2(color_map, size)
    full = np.fft.irfft2(depth_f * np.conj(color_f), size)
    shifts = np.arange(-max_shift, max_shift + 1)
    window = full[np.ix_(shifts % size[0], shifts % size[1])]
    # Each shift's overlap: normalise the sums to means.
    overlap = np.outer(h - np.abs(shifts), w - np.abs(shifts))
    return (window / overlap).astype(np.float64)


def frame_correlation(depth, color, max_shift, finer=1):
    """
    Return one frame's edge correlation (edge_correlation), or None without edges.

    :param depth: registered depth on the LR grid or a grid ``finer`` times finer.
    :param max_shift: the largest offset searched, LR pixels (at most a quarter of the grid).
    """
    depth_map = depth_edges(depth)
    color_map = color_edges(color, depth.shape) if depth_map is not None else None
    if depth_map is None or color_map is None:
        return None
    window = min(search_window(max_shift, finer), min(depth.shape) // 4)
    return edge_correlation(depth_map, color_map, window)


def peak(correlation):
    """
    Return (dx, dy, sigma, ratio, gain, value) of a correlation window: its peak, how clear.

    ``sigma``: how many standard deviations the peak stands above the window's mean;
    ``ratio``: the peak over the best value more than two pixels from it; ``gain``: how many
    standard deviations it stands above the window's centre (no shift); ``value``: the peak
    itself, the mean product of the two standardised edge maps there (a correlation
    coefficient when both maps overlap whole).
    """
    m = correlation.shape[0] // 2
    row, column = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    value = correlation[row, column]

    def refine(a, b, c):  # parabola through three neighbouring values
        denominator = a - 2 * b + c
        return 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    dy = refine(correlation[row - 1, column], value, correlation[row + 1, column]) if (
        0 < row < correlation.shape[0] - 1) else 0.0
    dx = refine(correlation[row, column - 1], value, correlation[row, column + 1]) if (
        0 < column < correlation.shape[1] - 1) else 0.0
    rows, columns = np.indices(correlation.shape)
    far = (np.abs(rows - row) > 2) | (np.abs(columns - column) > 2)
    deviation = float(correlation.std())
    sigma = (value - float(correlation.mean())) / deviation if deviation > 0 else 0.0
    other = float(correlation[far].max()) if far.any() else -np.inf
    ratio = value / other if other > 0 else math.inf
    gain = (value - float(correlation[m, m])) / deviation if deviation > 0 else 0.0
    return column - m + dx, row - m + dy, sigma, ratio, gain, float(value)


@dataclasses.dataclass
class Estimate:
    """The aligner's state, as the node reports it (offsets in LR pixels)."""

    correction: tuple = (0.0, 0.0)  # applied: (dx, dy) by which depth sat right and below
    frames: int = 0  # frames pooled since the last correction
    residual: tuple = None  # the pooled peak when it was clear at the last look, else None
    reason: str = 'no frame yet'


class Aligner:
    """Pool the depth/colour edge correlation over frames and keep the rig's correction."""

    def __init__(self, max_shift, every=EVERY, min_frames=3, memory=MEMORY, min_correction=0.0,
                 scale=1):
        """
        Build an aligner.

        :param max_shift: largest offset searched and applied, LR pixels (lr_max_shift: whole
            pixels of the grid matched on); the correction's length never exceeds it.
        :param every: correlate every so many frames (the cost is then amortised); on a
            matching grid larger than LOOK_PIXELS proportionally more (look_every).
        :param min_frames: pooled frames before a correction is taken.
        :param memory: the pooled correlation forgets over about this many correlated frames.
        :param min_correction: the smallest residual taken, LR pixels (lr_min_correction), besides
            MIN_CORRECTION pixels of the grid matched on.
        :param scale: output pixels per LR pixel: what the reasons count in (the user's pixels).
        """
        self.max_shift = float(max_shift)
        self.scale = scale
        self.min_correction = float(min_correction)
        self.base_every = self.every = max(1, int(every))
        self.min_frames = max(1, int(min_frames))
        self.keep = 1.0 - 1.0 / max(1.0, float(memory))  # an old frame's weight per new one
        self.estimate = Estimate()
        self._pooled = None
        self._matched = None  # (finer, shape) of the grid the pooled correlation is on
        self._seen = 0
        self._grid = None

    def reset(self):
        """Forget the correction and the pooled frames (the alignment was off, or fixed)."""
        self.estimate = Estimate()
        self._pooled = None

    def _pooled_weight(self):
        """Return the sum of the pooled frames' weights: keep ** 0 + ... + keep ** (n - 1)."""
        n = self.estimate.frames
        return float(n) if self.keep == 1.0 else (1.0 - self.keep ** n) / (1.0 - self.keep)

    def due(self):
        """Return True when the next frame observed is one that is correlated."""
        return self._seen % self.every == 0

    def correction(self, grid_shape, finer=None):
        """
        Return the (dx, dy) LR pixels to take off the depth on an LR grid of ``grid_shape``.

        ``finer``: how many times finer than it the edges are matched (finer_grid(scale)
        unless given; 1 for depth that arrives on the LR grid).
        """
        finer = finer_grid(self.scale) if finer is None else finer
        if (grid_shape, finer) != self._grid:  # another grid (scale, size, route): start again
            self._grid = (grid_shape, finer)
            self.every = look_every((grid_shape[0] * finer, grid_shape[1] * finer),
                                    self.base_every)
            self.reset()
        return self.estimate.correction

    def observe(self, depth, color, finer=1, whole=False):
        """
        Add a frame (depth registered with the current correction, and its colour image).

        :param depth: the depth on the LR grid, or on a grid ``finer`` times finer
            (finer_grid); only read on frames that are correlated (``due``).
        :param whole: the correction is applied in whole LR pixels (depth that arrives on the
            LR grid is moved, not resampled): it is kept rounded, so that the next residual,
            measured on depth moved by the rounded correction, adds to what was applied.
        Return True when the correction changed.
        """
        self._seen += 1
        if (self._seen - 1) % self.every:
            return False
        if search_window(self.max_shift, finer) < 1:
            self.estimate.reason = ('alignment_max_shift is less than one pixel of the grid '
                                    'the edges are matched on: no offset is searched')
            return False
        correlation = frame_correlation(depth, color, self.max_shift, finer)
        if correlation is None:
            self.estimate.reason = 'the frame has too few depth edges or no colour contrast'
            return False
        if self._pooled is None or self._matched != (finer, depth.shape):
            self._pooled, self._matched = correlation, (finer, depth.shape)
            self.estimate.frames = 0  # frames on another grid (route, scale) do not count
        else:  # a moving average over about MEMORY frames
            self._pooled = self.keep * self._pooled + correlation
        self.estimate.frames += 1
        dx, dy, sigma, ratio, gain, value = peak(self._pooled)
        value /= self._pooled_weight()  # the pooled sum's peak as a mean correlation
        clear = (sigma >= MIN_PEAK_SIGMA and ratio >= MIN_PEAK_RATIO
                 and value >= MIN_PEAK_VALUE)
        if not clear:
            self.estimate.residual = None
            self.estimate.reason = (f'no clear edge match yet ({sigma:.1f} sigma, ratio '
                                    f'{ratio:.2f}, correlation {value:.2f} over '
                                    f'{self.estimate.frames} frames)')
            return False
        self.estimate.residual = residual = (dx / finer, dy / finer)  # LR pixels
        self.estimate.reason = ''  # the edges match where the depth is
        away = math.hypot(*residual) * self.scale  # output pixels
        # MIN_CORRECTION is in pixels of the grid matched on: dx, dy before the division.
        if math.hypot(dx, dy) < MIN_CORRECTION or math.hypot(*residual) < self.min_correction:
            return False
        if gain < MIN_PEAK_GAIN:
            self.estimate.reason = (
                f'the edges match best {away:.1f} px away, but hardly better than as '
                f'registered ({gain:.1f} sigma over {self.estimate.frames} frames): left as it '
                'is')
            return False
        if self.estimate.frames < self.min_frames:
            self.estimate.reason = (f'the edges match best {away:.1f} px away: pooling '
                                    f'({self.estimate.frames} of {self.min_frames} frames)')
            return False
        dx, dy = residual
        cx, cy = self.estimate.correction
        new = (cx + dx, cy + dy)
        length = math.hypot(*new)
        if length > self.max_shift:  # as far as max_shift goes, in the same direction
            new = tuple(v * self.max_shift / length for v in new)
        if whole:  # the nearest whole pixels within max_shift
            new = _nearest_whole_within(new, self.max_shift)
        if math.hypot(new[0] - cx, new[1] - cy) * finer < MIN_CORRECTION:  # held where it is
            target = math.hypot(cx + dx, cy + dy) * self.scale  # the whole offset, output px
            bound = self.max_shift * self.scale
            self.estimate.reason = (
                f'the edges match best {target:.1f} px off, beyond alignment_max_shift '
                f'({bound:g} px): held at the bound' if target > bound else
                f'the edges match best {target:.1f} px off: held at the nearest whole LR pixels')
            return False
        self.estimate = Estimate(correction=new, reason='pooling again after a correction')
        self._pooled = None
        return True


def _nearest_whole_within(offset, bound):
    """Return the whole-pixel (dx, dy) nearest to ``offset`` whose length is at most ``bound``."""
    x, y = offset
    rounded = whole_pixels(offset)
    if math.hypot(*rounded) <= bound:
        return rounded
    corners = [(float(a), float(b)) for a in (math.floor(x), math.ceil(x))
               for b in (math.floor(y), math.ceil(y)) if math.hypot(a, b) <= bound]
    if not corners:  # a bound under one pixel along a diagonal
        return (0.0, 0.0)
    return min(corners, key=lambda c: math.hypot(c[0] - x, c[1] - y))


def align_still(register, color, max_shift, finer=1, low=None, rounds=3, min_correction=0.0):
    """
    Return (LR depth, correction): one still frame aligned as the node aligns its rig.

    The node pools the correlation over frames; on one still frame pooling adds nothing, so
    each round looks once (a clear peak, at least MIN_CORRECTION and ``min_correction`` away and
    MIN_PEAK_GAIN above the current registration: the correction is taken),
    and the next round looks again at the moved depth, as the node pools again after a
    correction.

    :param register: (correction, finer) -> the depth registered with the correction (LR
        pixels) on a grid ``finer`` times finer than the LR grid.
    :param max_shift: the largest offset searched and applied, LR pixels.
    :param finer: the grid the edges are matched on, as the node's (finer_grid).
    :param low: the depth registered on the LR grid without a correction, if at hand.
    :param min_correction: the smallest residual taken, LR pixels, as the node's
        (lr_min_correction).
    """
    if low is None:
        low = register((0.0, 0.0), 1)
    aligner = Aligner(max_shift, every=1, min_frames=1, min_correction=min_correction)
    seen = low if finer == 1 else register((0.0, 0.0), finer)
    for _ in range(rounds):
        if not aligner.observe(seen, color, finer):
            break
        seen = register(aligner.estimate.correction, finer)
    correction = aligner.estimate.correction
    if not any(correction):
        return low, correction
    return (seen if finer == 1 else register(correction, 1)), correction
