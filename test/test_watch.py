"""The player-and-node watcher joins the domain again when it hears nothing (real processes)."""

import os
import time

from depth_sr_ros.ros import ONE_COMPUTER_TRANSPORTS, watch
import pytest
import rclpy


class DeafOnce(watch.Watcher):
    """A watcher whose first participant drops everything: a discovery that went wrong."""

    made = 0

    def __init__(self, inputs=True, **kwargs):
        super().__init__(inputs, **kwargs)
        DeafOnce.made += 1
        self.deaf = DeafOnce.made == 1

    def _on_output(self, msg):
        if not self.deaf:
            super()._on_output(msg)

    def _on_diagnostics(self, msg):
        if not self.deaf:
            super()._on_diagnostics(msg)


@pytest.mark.slow
def test_a_watcher_that_hears_nothing_joins_again_and_then_sees_the_node(
        model_path, monkeypatch, capsys):
    monkeypatch.setattr(watch, 'Watcher', DeafOnce)
    monkeypatch.setattr(DeafOnce, 'made', 0)
    monkeypatch.setattr(watch, 'REJOIN_AFTER_S', 6.0)
    monkeypatch.setattr(watch, 'REJOINS', 1)  # a slow start must not make it re-join twice
    domain = 220 + os.getpid() % 10  # 220-229: no other test module uses these
    # watch_player_and_node sets these for its own participant: give them back afterwards.
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('FASTDDS_BUILTIN_TRANSPORTS', ONE_COMPUTER_TRANSPORTS)
    launched = time.time()  # the ROS clock the watcher reads is the system time
    watcher, ok = watch.watch_player_and_node(4, 15.0, model_path, 'cpu', domain, 'test',
                                              inputs=False, from_first_output=True)
    try:
        assert ok and not watcher.interrupted
        assert watcher.rejoins == 1 and not watcher.deaf
        assert watcher.outputs and watcher.diagnostics
        assert 'heard nothing from the node in 6 s' in capsys.readouterr().err
        # Output times count from the watch's start, not from the re-join (6 s or more later).
        assert watcher.started - launched < 5.0
    finally:
        watcher.destroy_node()
        rclpy.shutdown()
