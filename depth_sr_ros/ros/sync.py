"""
Pairing depth and colour messages by time stamp, with no ROS graph needed.

``StampPairer`` reproduces message_filters' ApproximateTimeSynchronizer for two inputs (and
TimeSynchronizer with ``exact=True``): each input keeps a queue of at most ``queue_size``
messages by stamp; a new message pairs with the closest message of the other input whose
stamp differs by less than ``slop`` seconds, and both leave their queues. The node uses
message_filters when it is importable and this class otherwise. Unlike message_filters, every
message that leaves a queue unpaired is counted, and a stamp that jumps back by more than
``reset_after_jump`` seconds (the slop unless given: a bag that loops, a driver that
restarts) drops the queued messages from before the jump instead of stalling the pairing or
pairing them with messages from after it.

``PairingMonitor`` watches arrivals and pairs and explains, once, why no pair forms.

Why two back-ends, and why the message_filters one has three parts. ROS users expect
message_filters' synchronizers, so the node pairs with them when they are importable; pip has
none, so StampPairer stands in, counting its own drops. A message_filters synchronizer counts
nothing, keeps its queues to itself, and (in Humble and Jazzy) cannot be disconnected from
its inputs. Counting every drop through its public API alone takes:

- QueueLedger: the synchronizer's full-queue rule applied to the stamps that go in and the
  pairs that come out, so each message it drops is counted. Without it drops go uncounted.
- A new synchronizer after a time jump: the old one keeps the messages from before the jump,
  newer than every new one, so a full queue evicts each new message first and pairing stalls
  until the stamps catch up. Emptying its queues from outside would rely on its internals.
- Two relay filters between the subscribers and the synchronizer: a synchronizer connected
  to the subscribers themselves would stay connected after it is replaced, and keep pairing
  (pairs given twice, one more synchronizer per jump).

Nothing smaller counts every drop with message_filters; StampPairer alone would count them
but leave message_filters out.
"""

import bisect
import dataclasses
import math
import threading

from depth_sr_ros.ros.parameters import PARAMETERS

DEPTH, COLOR = 0, 1
INPUT_NAMES = ('depth', 'colour')


@dataclasses.dataclass
class Jump:
    """A stamp that stepped back: by how much, and whether the other input is behind too."""

    seconds: float
    other_behind: bool  # the other input's newest stamp is from before the jump as well


class JumpDetector:
    """Notice stamps that jump back (a bag that loops, a driver that restarts) on two inputs."""

    def __init__(self, seconds):
        """
        Build the detector.

        :param seconds: a stamp this much older than the newest one seen on its input is a
            jump back. One camera's stamps only grow, so the pairing's slop will do: a message
            that steps back by more could pair with one from before the step, taken at
            another time.
        """
        self.jump_ns = int(round(seconds * 1e9))
        self.newest = [None, None]

    def check(self, index, stamp_ns):
        """
        Record a stamp of input ``index``; return a Jump when it stepped back, else None.

        The other input is still before the jump when its newest stamp lies nearer this
        input's newest than the new stamp (either input may lead the other by its arrival
        delay, more than a slop): it then forgets that stamp, so that its first message on
        the new time line is not a second jump. One already on the new time line keeps its
        newest stamp, so a later jump of its own is still seen.
        """
        newest = self.newest[index]
        if newest is None or stamp_ns >= newest - self.jump_ns:
            if newest is None or stamp_ns > newest:
                self.newest[index] = stamp_ns
            return None
        other = self.newest[1 - index]
        behind = other is not None and 2 * other > newest + stamp_ns
        if behind:
            self.newest[1 - index] = None
        self.newest[index] = stamp_ns
        return Jump((newest - stamp_ns) * 1e-9, behind)


class QueueLedger:
    """
    What a message_filters synchronizer holds, kept from what goes in and which pairs come out.

    message_filters' Python synchronizers keep, per input, one message per stamp, delete the
    oldest stamp when an input holds more than ``queue_size``, and count nothing. Given the
    same stamps in the same order, the ledger applies the same rule from the outside (its
    public side), so the node can count what they drop without reading their queues.
    Newer message_filters releases (after Jazzy) also purge, in TimeSynchronizer (exact_sync),
    every stamp older than a pair they give out; the ledger does not, so with exact_sync on
    those releases it counts such messages as dropped only once they would have been
    evicted, or when a time jump replaces the synchronizer.
    """

    def __init__(self, queue_size):
        """Start empty, for a synchronizer with this queue_size."""
        self.queue_size = int(queue_size)
        self.held = (set(), set())
        self.dropped = 0  # evicted from a full queue, replaced by the same stamp, or cleared

    def add(self, index, stamp_ns):
        """Record a message of input ``index`` about to be given to the synchronizer."""
        held = self.held[index]
        if stamp_ns in held:
            self.dropped += 1  # the synchronizer keeps the newer message of a stamp
        held.add(stamp_ns)
        while len(held) > self.queue_size:
            held.remove(min(held))
            self.dropped += 1

    def paired(self, depth_stamp_ns, color_stamp_ns):
        """Record a pair that the synchronizer gave out."""
        self.held[DEPTH].discard(depth_stamp_ns)
        self.held[COLOR].discard(color_stamp_ns)

    def clear(self):
        """Count everything held as dropped (the synchronizer is replaced); return how many."""
        count = sum(len(held) for held in self.held)
        self.dropped += count
        for held in self.held:
            held.clear()
        return count


@dataclasses.dataclass
class PairingCounts:
    """Running totals of what happened to the messages given to a StampPairer."""

    received: list = dataclasses.field(default_factory=lambda: [0, 0])
    paired: int = 0
    unpaired: list = dataclasses.field(default_factory=lambda: [0, 0])
    resets: int = 0


class StampPairer:
    """Pair messages from two inputs by stamp (stamps in integer nanoseconds)."""

    def __init__(self, queue_size=PARAMETERS['queue_size'].default,
                 slop=PARAMETERS['slop'].default, exact=False, reset_after_jump=None,
                 max_age=None):
        """
        Build the pairer.

        :param queue_size: messages kept per input while waiting for a partner (>= 1).
        :param slop: largest stamp difference of a pair in seconds (approximate mode).
        :param exact: pair only identical stamps (message_filters' TimeSynchronizer).
        :param reset_after_jump: a stamp this many seconds older than the newest one seen on
            its input (default: ``slop``) drops the queued messages from before the jump.
        :param max_age: if given, a queued message whose stamp is this many seconds older
            than the newest stamp seen leaves too (depth_sr_bag: queues that hold a time
            span, whatever the rates).
        """
        if queue_size < 1:
            raise ValueError(f'queue_size must be at least 1, got {queue_size}')
        if slop < 0:
            raise ValueError(f'slop must not be negative, got {slop}')
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop * 1e9))
        self.exact = bool(exact)
        self.max_age_ns = None if max_age is None else int(round(max_age * 1e9))
        self.jumps = JumpDetector(slop if reset_after_jump is None else reset_after_jump)
        self.queues = ({}, {})
        self.counts = PairingCounts()

    def _forget(self, index):
        """Drop (and count) every message queued on input ``index``."""
        self.counts.unpaired[index] += len(self.queues[index])
        self.queues[index].clear()

    def add(self, index, stamp_ns, msg):
        """
        Add a message of input ``index`` (DEPTH or COLOR).

        :return: (depth_msg, colour_msg) when this message completes a pair, else None.
        """
        self.counts.received[index] += 1
        jump = self.jumps.check(index, stamp_ns)
        if jump is not None:
            # This input's queue is from before the jump; so is the other's, unless that input
            # is already on the new time line (it restarted first).
            self._forget(index)
            if jump.other_behind:
                self._forget(1 - index)
            self.counts.resets += 1
        queue = self.queues[index]
        if stamp_ns in queue:  # a duplicate stamp replaces the older message
            self.counts.unpaired[index] += 1
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.counts.unpaired[index] += 1
        if self.max_age_ns is not None:
            cutoff = max(n for n in self.jumps.newest if n is not None) - self.max_age_ns
            for which, waiting in enumerate(self.queues):
                for old in [s for s in waiting if s < cutoff]:
                    del waiting[old]
                    self.counts.unpaired[which] += 1
        if stamp_ns not in queue:
            return None  # older than every message of a full queue: it went first
        other = self.queues[1 - index]
        if self.exact:
            partner = stamp_ns if stamp_ns in other else None
        else:
            candidates = [s for s in other if abs(s - stamp_ns) < self.slop_ns]
            partner = min(candidates, key=lambda s: abs(s - stamp_ns)) if candidates else None
        if partner is None:
            return None
        pair = [None, None]
        pair[index] = queue.pop(stamp_ns)
        pair[1 - index] = other.pop(partner)
        self.counts.paired += 1
        return tuple(pair)


class PairingMonitor:
    """Explain, once per episode, why no depth/colour pair has formed for ``timeout`` seconds."""

    def __init__(self, slop, exact, timeout=3.0):
        """
        Build the monitor.

        :param slop: the pairing slop in seconds, quoted in the explanation.
        :param exact: whether pairing needs identical stamps.
        :param timeout: seconds without a pair before explaining.
        """
        self.slop = slop
        self.exact = exact
        self.timeout = timeout
        self.last_arrival = [None, None]  # monotonic seconds
        self.first_arrival = [None, None]
        self.arrivals = [0, 0]
        self.last_stamp = [None, None]  # seconds
        self.last_pair = None
        self.started = None
        self.warned = False

    def arrived(self, index, now, stamp):
        """Record a message of input ``index`` received at ``now`` with header ``stamp``."""
        if self.started is None:
            self.started = now
        self.last_arrival[index] = now
        if self.first_arrival[index] is None:
            self.first_arrival[index] = now
        self.arrivals[index] += 1
        self.last_stamp[index] = stamp

    def period(self, index):
        """Return the mean time between arrivals of input ``index`` in s, or None."""
        if self.arrivals[index] < 2:
            return None
        return (self.last_arrival[index] - self.first_arrival[index]) / (self.arrivals[index] - 1)

    def paired(self, now):
        """Record that a pair formed; the next stall may be explained again."""
        self.last_pair = now
        self.warned = False

    def check(self, now):
        """Return an explanation the first time pairing has stalled, otherwise None."""
        if self.warned or self.started is None:
            return None
        since = now - (self.last_pair if self.last_pair is not None else self.started)
        if since < self.timeout:
            return None
        silent = [i for i in (DEPTH, COLOR) if self.last_arrival[i] is None
                  or now - self.last_arrival[i] > self.timeout]
        if len(silent) == 2:
            return None  # nothing arrives at all: not a pairing problem
        self.warned = True
        if silent:
            missing, present = INPUT_NAMES[silent[0]], INPUT_NAMES[1 - silent[0]]
            return (f'no depth/colour pair for {since:.1f} s: {present} arrives but no '
                    f'{missing} message for over {self.timeout:.0f} s; check that the '
                    f'{missing} topics are remapped to the camera driver')
        gap = abs(self.last_stamp[DEPTH] - self.last_stamp[COLOR])
        rule = 'identical stamps (exact_sync)' if self.exact else f'slop {self.slop:.3f} s'
        head = (f'no depth/colour pair for {since:.1f} s although both arrive: the latest '
                f'stamps differ by {gap:.3f} s and pairing needs {rule}; ')
        ahead = DEPTH if self.last_stamp[DEPTH] > self.last_stamp[COLOR] else COLOR
        period = self.period(ahead)
        if period is None or gap <= max(self.period(1 - ahead) or 0.0, period):
            # less than a frame apart: partners are there, the slop misses them
            return head + ('raise slop, or check that both drivers stamp with the same clock '
                           '(use_sim_time)')
        # Frames apart. Either the one behind arrives that late, and its partners have left
        # their queue_size-long queue by then, or the two clocks differ. A slop that large
        # would pair frames taken that far apart.
        clocks = ('the drivers stamp with different clocks (use_sim_time?): a slop that large '
                  'would pair frames taken that far apart')
        needed = math.ceil(gap / period) + 2
        if needed > PARAMETERS['queue_size'].high:  # no queue holds that: the clocks
            return head + clocks
        return head + (f'if the {INPUT_NAMES[1 - ahead]} images arrive that late, their '
                       f'{INPUT_NAMES[ahead]} partners leave the queue before: raise '
                       f'queue_size to at least {needed}; otherwise {clocks}')


class CameraInfoStore:
    """
    The recent camera_info messages of one input, to match an image by its stamp.

    ``match(stamp_ns)`` returns the camera_info stamped nearest to the image (the one with
    its stamp when that has arrived): drivers publish them together, but they may arrive in
    any order, stamped a little apart, and a calibration may change.
    """

    def __init__(self, keep=30):
        """Remember at most ``keep`` camera_infos by stamp."""
        self.keep = keep
        self._by_stamp = {}  # in arrival order: the oldest arrival leaves first
        self._stamps = []  # the same stamps, sorted
        self._lock = threading.Lock()  # the node adds on its executor, matches on inference
        self.newest = None

    def add(self, msg, stamp_ns):
        """Store a camera_info with its stamp in nanoseconds (the oldest arrival leaves)."""
        with self._lock:
            if self._by_stamp.pop(stamp_ns, None) is not None:
                self._stamps.remove(stamp_ns)
            if len(self._by_stamp) >= self.keep:
                oldest = next(iter(self._by_stamp))
                del self._by_stamp[oldest]
                self._stamps.remove(oldest)
            self._by_stamp[stamp_ns] = msg
            bisect.insort(self._stamps, stamp_ns)
            self.newest = msg

    def match(self, stamp_ns):
        """Return the camera_info stamped nearest ``stamp_ns`` (the earlier of two), or None."""
        with self._lock:
            at = bisect.bisect_left(self._stamps, stamp_ns)
            near = self._stamps[max(0, at - 1):at + 1]
            return self._by_stamp[min(near, key=lambda s: abs(s - stamp_ns))] if near else None
