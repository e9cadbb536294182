"""
Run depth_sr_player and depth_sr_node as two processes and watch them from a third.

Used by depth_sr_live_demo, depth_sr_soak and depth_sr_benchmark's DDS measurement.
"""

import os
import subprocess
import sys
import time

from depth_sr_ros.console import ctrl_c_received, stop_processes
from depth_sr_ros.data.scene import recommended_model, rig_extrinsic, RIG_NAMES
from depth_sr_ros.paths import MODEL_HELP
from depth_sr_ros.ros import DIAGNOSTICS_NAME, ONE_COMPUTER_TRANSPORTS
from depth_sr_ros.ros.conversions import stamp_ns
from depth_sr_ros.ros.recording import read_recording
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

# The node publishes /diagnostics every diagnostics_period (2 s here) from its start. A watcher
# that has heard nothing for this long while both processes run missed the DDS discovery: it
# joins the domain again as a new participant. Seen on a loaded 2-core machine under Fast DDS's
# LARGE_DATA transports: player and node paired and served at 9 Hz for a minute while the
# watcher's participant received nothing, not even /diagnostics. The processes now use shared
# memory alone (ONE_COMPUTER_TRANSPORTS), where that was never seen; this stays as the second
# line of defence.
REJOIN_AFTER_S = 20.0
REJOINS = 2


def add_rig_and_model_options(parser, rig_help):
    """Add --rig (the camera the player imitates) and --model to a watching tool's parser."""
    parser.add_argument('--rig', default='registered', choices=RIG_NAMES, help=rig_help)
    parser.add_argument('--model', default='',
                        help=MODEL_HELP + "; a rig's own where it needs another (tof: 8x)")


def model_for(args):
    """Return the model the node serves: --model, else the rig's own (none for a bag)."""
    return args.model or ('' if getattr(args, 'bag', '') else recommended_model(args.rig))


def diagnostic_number(text):
    """Return a number of the node's /diagnostics values; '-' (none this period) is NaN."""
    return float('nan') if text.strip() == '-' else float(text)


class Watcher(Node):
    """Keeps recent inputs by stamp, the node's outputs, and its diagnostics."""

    def __init__(self, inputs=True, **kwargs):
        """Subscribe to the output and /diagnostics, and with ``inputs`` the camera topics."""
        super().__init__('depth_sr_live_demo', **kwargs)
        self.depth, self.color, self.truth = {}, {}, {}
        self.still = False  # every frame of the player is the same view
        self.started = self.get_clock().now().nanoseconds * 1e-9
        self.outputs = []  # (receive time s, message)
        self.diagnostics = []
        self.heard = False  # an output or /diagnostics of the node arrived
        for store, topic in ((self.depth, 'depth/image_raw'), (self.color, 'color/image_raw'),
                             (self.truth, 'truth/depth')):
            if inputs:  # a picture needs them; a measurement does not pay for them
                self.create_subscription(Image, topic, self._keep(store),
                                         qos_profile_sensor_data)
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, 'depth_sr/image', self._on_output, reliable)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _keep(self, store):
        def callback(msg):
            store[stamp_ns(msg.header.stamp)] = msg
            while len(store) > 300:
                del store[min(store)]
        return callback

    def _on_output(self, msg):
        self.heard = True
        self.outputs.append((self.get_clock().now().nanoseconds * 1e-9, msg))

    def _on_diagnostics(self, msg):
        self.heard = True
        for status in msg.status:
            if status.name.endswith(DIAGNOSTICS_NAME):
                self.diagnostics.append({kv.key: kv.value for kv in status.values})


def watch_player_and_node(seconds, rate, model, device, domain_id, program, on_tick=None,
                          rig='registered', inputs=True, bag='', from_first_output=False):
    """
    Run depth_sr_player and depth_sr_node as two processes and watch them for ``seconds``.

    Both use ROS domain ``domain_id`` and Fast DDS's ONE_COMPUTER_TRANSPORTS, as does the
    Watcher in this process. ``on_tick(node_process, elapsed_s)`` is called about ten times a
    second. ``rate``: the player's frames per second (None: its default; a bag plays at its
    recorded pace). ``rig`` is the player's camera (its extrinsic goes to the node's
    depth_to_color);
    ``inputs``: the watcher also keeps the camera images (for a picture).
    ``from_first_output``: the ``seconds`` start at the node's first output (at most a minute
    of start-up is waited for), and what came before is forgotten: a measurement of the
    running node, not of its start.
    Returns (watcher, ok); ok is False when a process stopped early. Ctrl-C ends the watch
    early, like its time running out, and sets ``watcher.interrupted``; ``watcher.watched`` is
    the seconds watched (from the first output with ``from_first_output``). The caller destroys
    the watcher and shuts rclpy down.
    """
    extrinsic = read_recording(bag)[2] if bag else rig_extrinsic(rig)
    # A scene rig renders each view in about a second at start-up, and a CPU takes seconds
    # per 1280x720 output: the player shows one still view, so every frame matches.
    still = rig != 'registered' and not bag
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
               FASTDDS_BUILTIN_TRANSPORTS=ONE_COMPUTER_TRANSPORTS)
    os.environ.update(env)  # the watcher in this process joins the same domain and transports
    commands = [
        # A bag plays at its recorded pace: the player refuses a rate with it.
        [sys.executable, '-m', 'depth_sr_ros.tools.player', '--ros-args', '-p', f'rig:={rig}']
        + (['-p', 'frames:=1'] if still else [])
        + (['-p', f'bag:={bag}'] if bag else ['-p', f'rate:={rate}'] if rate else []),
        [sys.executable, '-m', 'depth_sr_ros.ros.node', '--ros-args', '-p', f'device:={device}',
         '-p', 'diagnostics_period:=2.0']
        + (['-p', f'model_path:={model}'] if model else [])
        + (['-p', f'depth_to_color:={extrinsic}'] if extrinsic else []),
    ]
    processes = [subprocess.Popen(c, env=env) for c in commands]
    rclpy.init()
    watcher = Watcher(inputs)
    watcher.still = still
    started = launched = joined = time.monotonic()
    waiting = from_first_output
    watcher.interrupted = False
    watcher.rejoins = 0
    try:
        while time.monotonic() - started < seconds + (60.0 if waiting else 0.0):
            if (not watcher.heard and time.monotonic() - joined > REJOIN_AFTER_S
                    and watcher.rejoins < REJOINS):
                watcher = _rejoin(watcher, inputs, program)
                joined = time.monotonic()
            if waiting and watcher.outputs:
                waiting = False
                started = time.monotonic()
                watcher.outputs.clear()
                watcher.diagnostics.clear()
            rclpy.spin_once(watcher, timeout_sec=0.1)
            if on_tick is not None:
                on_tick(processes[1], time.monotonic() - started)
            if any(p.poll() is not None for p in processes):
                print(f'{program}: a process stopped early (see its output above)',
                      file=sys.stderr)
                return watcher, False
    except (KeyboardInterrupt, RuntimeError) as error:
        # Ctrl-C: stop watching, and say what was seen so far (rclpy may have turned it into
        # a RuntimeError: console.ctrl_c_received).
        if isinstance(error, RuntimeError) and not ctrl_c_received():
            raise
        watcher.interrupted = True
        print(f'{program}: stopped by Ctrl-C after {time.monotonic() - launched:.0f} s; what '
              'was seen until then follows', file=sys.stderr)
    finally:
        watcher.watched = time.monotonic() - started  # seconds, from the first output if waited
        stop_processes(processes, timeout=15)
    return watcher, True


def _rejoin(watcher, inputs, program):
    """Replace ``watcher`` by a new Watcher on a new DDS participant, keeping its counters."""
    print(f'{program}: heard nothing from the node in {REJOIN_AFTER_S:.0f} s; '
          'joining the DDS domain again', file=sys.stderr)
    watcher.destroy_node()
    rclpy.shutdown()
    rclpy.init()
    fresh = Watcher(inputs)
    fresh.started = watcher.started  # times of outputs count from the watch's start
    fresh.still, fresh.interrupted = watcher.still, watcher.interrupted
    fresh.rejoins = watcher.rejoins + 1
    return fresh
