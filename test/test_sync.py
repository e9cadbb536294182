"""Stamp pairing (message_filters semantics), the stall explanation and camera_info by stamp."""

from depth_sr_ros.ros.parameters import PARAMETERS
from depth_sr_ros.ros.sync import (
    CameraInfoStore, COLOR, DEPTH, INPUT_NAMES, JumpDetector, PairingMonitor, QueueLedger,
    StampPairer)
import pytest

MS = 1_000_000
SECOND = 1000 * MS


def test_pairs_the_closest_partner_within_slop():
    pairer = StampPairer(queue_size=10, slop=0.01)
    assert pairer.add(COLOR, 100 * MS, 'c100') is None
    assert pairer.add(COLOR, 133 * MS, 'c133') is None
    assert pairer.add(DEPTH, 131 * MS, 'd131') == ('d131', 'c133')
    assert pairer.add(DEPTH, 120 * MS, 'd120') is None  # 20 ms from c100: over the slop
    assert pairer.counts.paired == 1


def test_unpaired_messages_are_counted_when_they_leave_the_queue():
    pairer = StampPairer(queue_size=2, slop=0.01)
    for t in (0, 100, 200):
        pairer.add(DEPTH, t * MS, t)
    assert pairer.counts.unpaired == [1, 0]
    assert sorted(pairer.queues[DEPTH]) == [100 * MS, 200 * MS]
    assert pairer.counts.received == [3, 0]


def test_a_late_message_older_than_a_full_queue_is_dropped_not_crashed_on():
    # Jumps of up to a second tolerated: by default a step back this large is a time jump.
    pairer = StampPairer(queue_size=2, slop=0.01, reset_after_jump=1.0)
    pairer.add(COLOR, 50 * MS, 'c50')
    pairer.add(DEPTH, 100 * MS, 'd100')
    pairer.add(DEPTH, 200 * MS, 'd200')
    # Arrives late (reordered): the oldest of a full queue leaves first, so it cannot pair.
    assert pairer.add(DEPTH, 51 * MS, 'd51') is None
    assert sorted(pairer.queues[DEPTH]) == [100 * MS, 200 * MS]
    assert pairer.counts.unpaired == [1, 0]


def test_exact_mode_needs_identical_stamps():
    pairer = StampPairer(queue_size=5, slop=0.5, exact=True)
    assert pairer.add(DEPTH, 10 * MS, 'd') is None
    assert pairer.add(COLOR, 11 * MS, 'c11') is None
    assert pairer.add(COLOR, 10 * MS, 'c10') == ('d', 'c10')


def test_stamps_jumping_back_reset_the_queues_and_pairing_recovers():
    pairer = StampPairer(queue_size=10, slop=0.01)
    pairer.add(DEPTH, 5000 * MS, 'old depth')
    assert pairer.add(COLOR, 10 * MS, 'c') is None  # colour restarted: no reset on colour yet
    assert pairer.add(DEPTH, 12 * MS, 'd') == ('d', 'c')  # depth jumps back: reset, then pair
    assert pairer.counts.resets == 1 and pairer.counts.unpaired[DEPTH] == 1


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match='queue_size'):
        StampPairer(queue_size=0)
    with pytest.raises(ValueError, match='slop'):
        StampPairer(slop=-1)


def test_monitor_explains_stamps_too_far_apart_once():
    monitor = PairingMonitor(slop=0.05, exact=False, timeout=3.0)
    for t in range(5):
        monitor.arrived(DEPTH, t, 100.0 + t)
        monitor.arrived(COLOR, t, 100.5 + t)
    message = monitor.check(4.0)
    assert 'stamps differ by 0.500 s' in message and 'slop 0.050 s' in message
    assert monitor.check(4.5) is None  # once per episode
    monitor.paired(5.0)
    assert monitor.check(5.5) is None


def test_monitor_names_the_missing_input():
    monitor = PairingMonitor(slop=0.05, exact=False, timeout=3.0)
    for t in range(5):
        monitor.arrived(COLOR, t, float(t))
    assert 'no depth message' in monitor.check(4.0)


def test_monitor_is_quiet_when_nothing_arrives_or_pairs_flow():
    monitor = PairingMonitor(slop=0.05, exact=False, timeout=3.0)
    assert monitor.check(10.0) is None
    monitor.arrived(DEPTH, 0.0, 0.0)
    monitor.arrived(COLOR, 0.0, 0.0)
    monitor.paired(0.5)
    assert monitor.check(2.0) is None


@pytest.mark.parametrize('phase_ms', [0.0, 8.0, 15.5, 16.7, 18.0, 25.0, 33.0])
def test_the_default_slop_pairs_two_30_hz_streams_at_any_phase(phase_ms):
    # Depth and colour that are not synchronised (a RealSense D4xx) run at the same rate with
    # any phase between them: the nearest partner is up to half a period, 16.7 ms, away. A
    # slop of 15 ms paired none of them at 15.5-18 ms.
    pairer = StampPairer(slop=PARAMETERS['slop'].default)
    period = 1e9 / 30
    pairs = 0
    for i in range(60):
        pairs += pairer.add(COLOR, int(i * period), 'c') is not None
        pairs += pairer.add(DEPTH, int(i * period + phase_ms * 1e6), 'd') is not None
    assert pairs >= 58


def test_slop_is_a_strict_bound_as_in_message_filters():
    pairer = StampPairer(queue_size=5, slop=0.01)
    pairer.add(DEPTH, 0, 'd')
    assert pairer.add(COLOR, 10 * MS, 'c') is None
    assert pairer.add(COLOR, 10 * MS - 1, 'c2') == ('d', 'c2')


def test_jump_detector_reports_a_jump_back_once():
    jumps = JumpDetector(seconds=1.0)
    assert jumps.check(DEPTH, 100 * SECOND) is None
    assert jumps.check(COLOR, 100 * SECOND) is None
    assert jumps.check(DEPTH, 99_500_000_000) is None  # late, but within a second
    assert jumps.check(DEPTH, 5 * SECOND).seconds == pytest.approx(95.0)
    assert jumps.check(COLOR, 5 * SECOND) is None  # the same restart, seen on colour
    assert jumps.check(DEPTH, 6 * SECOND) is None


def test_a_second_jump_on_the_other_input_is_still_seen():
    # colour at 10 s, depth at 50 s then back to 48 s, then colour back to 2 s: two jumps, and
    # the pairer keeps nothing from before them.
    pairer = StampPairer(queue_size=10, slop=0.01)
    for index, seconds in ((COLOR, 10), (DEPTH, 50), (DEPTH, 48), (COLOR, 2)):
        pairer.add(index, seconds * SECOND, f'{INPUT_NAMES[index]} {seconds}')
    assert pairer.counts.resets == 2
    assert [sorted(q.values()) for q in pairer.queues] == [[], ['colour 2']]


def test_the_ledger_counts_what_a_message_filters_queue_drops():
    ledger = QueueLedger(queue_size=2)
    for stamp in (10, 20):
        ledger.add(DEPTH, stamp)
    ledger.add(COLOR, 20)
    ledger.paired(20, 20)  # the synchronizer gave out (20, 20)
    assert ledger.dropped == 0 and ledger.held == ({10}, set())
    ledger.add(DEPTH, 30)
    ledger.add(DEPTH, 40)  # three held: the oldest (10) is deleted, as message_filters does
    assert ledger.dropped == 1 and ledger.held[DEPTH] == {30, 40}
    ledger.add(DEPTH, 40)  # the same stamp again replaces the held message
    assert ledger.dropped == 2
    ledger.add(COLOR, 5)
    assert ledger.clear() == 3 and ledger.dropped == 5  # a replaced synchronizer held three
    assert ledger.held == (set(), set())


def test_a_camera_info_store_matches_the_nearest_stamp_and_forgets_the_oldest_arrival():
    store = CameraInfoStore(keep=3)
    assert store.match(5) is None
    for stamp in (30, 10, 20):  # arrival order differs from stamp order
        store.add(f'info {stamp}', stamp)
    assert [store.match(s) for s in (0, 10, 14, 15, 16, 99)] == [
        'info 10', 'info 10', 'info 10', 'info 10', 'info 20', 'info 30']  # a tie: the earlier
    store.add('info 40', 40)  # the first to arrive (30) leaves
    assert [store.match(s) for s in (29, 31, 36)] == ['info 20', 'info 40', 'info 40']
    store.add('info 20 again', 20)  # the same stamp replaces it
    assert store.match(20) == 'info 20 again' and store.newest == 'info 20 again'


def test_with_a_max_age_the_queues_hold_a_time_span_whatever_the_rates():
    # depth_sr_bag: depth at 90 Hz, its colour 130 ms late in arrival, a queue far longer
    # than needed; what is older than max_age behind the newest stamp leaves, counted.
    pairer = StampPairer(queue_size=10_000, slop=0.005, max_age=0.2)
    step = 11_111_111
    pairs = 0
    for k in range(90):
        pairs += pairer.add(DEPTH, k * step, f'depth {k}') is not None
        late = k - 12  # the colour of depth k - 12 (133 ms ago) arrives now, every third
        if late >= 0 and late % 3 == 0:
            pairs += pairer.add(COLOR, late * step, f'colour {late}') is not None
    assert pairs == 26 and pairer.counts.paired == 26  # each colour that arrived found its depth
    # Left: what is younger than 0.2 s; gone and counted: every older unpaired depth.
    assert all(s >= 89 * step - 200_000_000 for s in pairer.queues[DEPTH])
    assert pairer.counts.unpaired[DEPTH] + len(pairer.queues[DEPTH]) == 90 - 26


def _five_stalled_seconds(depth_stamps, color_stamps):
    """Return what the monitor says of 5 s of 30 Hz streams stamped from these starts."""
    monitor = PairingMonitor(slop=0.02, exact=False, timeout=3.0)
    for k in range(150):
        now = k / 30
        monitor.arrived(DEPTH, now, depth_stamps + now)
        monitor.arrived(COLOR, now, color_stamps + now)
    return monitor.check(150 / 30)


def test_monitor_asks_for_a_longer_queue_when_one_input_is_frames_behind():
    # Colour stamped 0.5 s behind depth at 30 Hz: a colour image late by that much finds its
    # depth partner gone from a 10-message queue. A slop of 0.5 s would pair frames taken
    # 0.5 s apart; what pairs them right is a queue of 0.5 s of depth.
    message = _five_stalled_seconds(depth_stamps=100.0, color_stamps=99.5)
    assert 'stamps differ by 0.500 s' in message
    assert 'colour images arrive that late' in message
    assert 'queue_size to at least 17' in message and 'raise slop' not in message


@pytest.mark.parametrize('step_ms', [100, 300])
def test_a_step_back_below_a_second_does_not_pair_frames_from_before_it(step_ms):
    # Both streams at 30 Hz step back by a fraction of a second (a short bag that loops); depth
    # arrives three frames ahead of its colour. A colour image from after the step must not
    # pair with a depth image from before it that has a nearby stamp (with a 1 s threshold,
    # three such pairs at either step).
    pairer = StampPairer(queue_size=10, slop=0.02)
    period = SECOND // 30
    for k in range(20):
        pairer.add(DEPTH, 1000 * MS + k * period, ('old', k))
        if k >= 3:
            pairer.add(COLOR, 1000 * MS + (k - 3) * period, ('old', k - 3))
    start = 1000 * MS + 19 * period - step_ms * MS
    pairs = [pairer.add(index, start + k * period, ('new', k))
             for k in range(15) for index in (COLOR, DEPTH)]
    pairs = [pair for pair in pairs if pair is not None]
    assert len(pairs) >= 14 and all(d[0] == c[0] == 'new' for d, c in pairs)
    queued = sum(len(queue) for queue in pairer.queues)
    assert sum(pairer.counts.received) == 2 * pairer.counts.paired + sum(
        pairer.counts.unpaired) + queued


def test_a_loop_keeps_the_new_frames_of_the_input_that_restarted_first():
    # A 2 s bag in a loop, colour arriving three frames after its depth: depth jumps first,
    # and its first frames of the new loop are queued when colour jumps. Those are on the new
    # time line (their stamps lie near colour's new one, not its old one) and must stay to
    # pair: only the frames in flight across the loop's end go unpaired.
    pairer = StampPairer(queue_size=10, slop=0.02)
    period = SECOND // 30
    frames = [(loop, k) for loop in range(2) for k in range(60)]
    events = sorted([(i, DEPTH, frame) for i, frame in enumerate(frames)]
                    + [(i + 3, COLOR, frame) for i, frame in enumerate(frames)])
    pairs = [pairer.add(index, 10 * SECOND + frame[1] * period, frame)
             for _, index, frame in events]
    pairs = [pair for pair in pairs if pair is not None]
    assert all(d == c for d, c in pairs)
    assert {d for d, _ in pairs} >= {(1, k) for k in range(60)}


def test_monitor_says_the_clocks_differ_when_no_queue_holds_the_gap():
    # Depth stamped with the wall clock, colour with a simulator's: no queue_size helps.
    message = _five_stalled_seconds(depth_stamps=1.7e9, color_stamps=40.0)
    assert 'different clocks (use_sim_time?)' in message and 'queue_size' not in message
