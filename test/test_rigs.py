"""
Real rigs end to end over DDS: the node registers each rig's depth and serves the colour grid.

Each rig of data/scene.py is published as its driver would (depth in its own frame, size and
lens, or aligned to the colour) to a node with a shipped model; the output must be on the
colour camera's grid with its camera_info and closer to the depth in the colour frame than
bicubic upsampling of the same registered depth. The depth-to-colour transform comes from the
depth_to_color parameter, or from tf2 (a stand-in with tf2_ros's public API, since tf2_ros is
not on PyPI).
"""

import os
import time

from depth_sr_ros.baselines import BicubicUpsampler
from depth_sr_ros.data.scene import (
    COLOR_FRAME, DEPTH_FRAME, make_scene, render_rig, rig_extrinsic, RIGS)
from depth_sr_ros.geometry.grids import plan_grids, resize_color
from depth_sr_ros.geometry.registration import reduce_registered, register_raw
from depth_sr_ros.ros import extrinsics
from depth_sr_ros.ros.conversions import (
    camera_info_message, image_message, image_to_array, metres_to_image, stamp_ns)
from helpers import REPO
from node_graph import Graph
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

OUTPUT = (640, 360)  # output_size: half the rigs' 1280x720 colour, to keep CPU time short
MODELS = {scale: os.path.join(REPO, 'models', f'ahmf_x{scale}.pt') for scale in (4, 8)}
RIG_SCALES = {'aligned': 4, 'd435': 4, 'azure_nfov': 4, 'tof': 8}

OFFSET_KEY = 'depth sat off the colour by (px right, down)'  # a /diagnostics key


@pytest.fixture(scope='module')
def scene():
    return make_scene()


def _messages(rig, frame, stamp_ns):
    stamp = divmod(stamp_ns, 10**9)
    depth_frame = COLOR_FRAME if rig.registered else DEPTH_FRAME
    depth = metres_to_image(frame['depth'], '16UC1', Image().header)
    depth.header.frame_id = depth_frame
    color_msg = image_message(frame['color'], 'rgb8', COLOR_FRAME)
    infos = camera_info_message(rig.depth, depth_frame), camera_info_message(rig.color,
                                                                             COLOR_FRAME)
    for msg in (depth, color_msg) + infos:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return depth, color_msg, infos


def _serve(g, rig, frame, timeout=120.0):
    """Publish the frame (new stamps) until an output and its camera_info come back."""
    pubs = g.connect(qos_profile_sensor_data)
    end = time.monotonic() + timeout
    stamp = 1_000_000_000
    while time.monotonic() < end:
        depth, color, (depth_info, color_info) = _messages(rig, frame, stamp)
        pubs['depth_info'].publish(depth_info)
        pubs['color_info'].publish(color_info)
        pubs['color'].publish(color)
        pubs['depth'].publish(depth)
        wait = time.monotonic() + 2.0
        while time.monotonic() < wait:
            if g.received['image'] and g.received['info']:
                return g.received['image'][0], g.received['info']
            time.sleep(0.02)
        stamp += 33_000_000
    raise AssertionError(f'no output within {timeout} s; counts {g.node.counts}')


@pytest.mark.slow  # a shipped model on four 1280x720 rigs: an accuracy benchmark
@pytest.mark.parametrize('name', sorted(RIG_SCALES))
def test_each_rig_is_served_on_the_colour_grid_better_than_bicubic(scene, name):
    rig, scale = RIGS[name], RIG_SCALES[name]
    frame = render_rig(scene, rig, index=2, frames=8)
    overrides = [Parameter('output_size', value=list(OUTPUT))]
    if not rig.registered:
        overrides.append(Parameter('depth_to_color', value=rig_extrinsic(name)))
    g = Graph(MODELS[scale], overrides)
    try:
        out, infos = _serve(g, rig, frame)
    finally:
        g.close()
    assert (out.width, out.height) == OUTPUT
    assert out.header.frame_id == COLOR_FRAME
    info = next(i for i in infos if i.header.stamp == out.header.stamp)
    assert (info.width, info.height) == OUTPUT and info.header.frame_id == COLOR_FRAME
    grids = plan_grids(rig.color, scale, OUTPUT)
    np.testing.assert_allclose(info.k, grids.output.k)
    # Truth and bicubic on the output grid, from the same registered LR depth.
    truth = reduce_registered(frame['truth'], rig.color, grids.output)
    if rig.registered:
        low = reduce_registered(frame['depth'], rig.depth, grids.lr)
    else:
        low = register_raw(frame['depth'], rig.depth, rig.depth_to_color, grids.lr)
    color = resize_color(frame['color'], grids)
    bicubic = BicubicUpsampler(scale)(low, color)[:OUTPUT[1], :OUTPUT[0]]
    result = image_to_array(out).astype(np.float32) / 1000.0
    result[result == 0] = np.nan
    both = np.isfinite(result) & np.isfinite(bicubic) & np.isfinite(truth)
    assert both.mean() > 0.5
    ours = np.mean(np.abs(result[both] - truth[both]))
    plain = np.mean(np.abs(bicubic[both] - truth[both]))
    print(f'{name}: node {ours * 1e3:.2f} mm, bicubic {plain * 1e3:.2f} mm')  # shown with -s
    assert ours < plain, f'{name}: node {ours * 1e3:.2f} mm, bicubic {plain * 1e3:.2f} mm'


class Tf2StandIn:
    """What the node uses of tf2_ros (not on PyPI), with its public names and behaviour."""

    class TransformException(Exception):
        """tf2_ros.TransformException: the base of its lookup errors."""

    class Buffer:

        def __init__(self):
            self.transforms = {}  # (target, source) -> geometry_msgs/TransformStamped

        def lookup_transform(self, target_frame, source_frame, time, timeout=None):
            try:
                return self.transforms[(target_frame, source_frame)]
            except KeyError:
                raise Tf2StandIn.TransformException(
                    f'"{target_frame}" passed to lookupTransform argument target_frame does '
                    'not exist.') from None

    class TransformListener:

        def __init__(self, buffer, node):
            Tf2StandIn.buffers.append(buffer)

    buffers = []


def _transform_msg(values):
    from geometry_msgs.msg import TransformStamped
    msg = TransformStamped()
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z, q.x, q.y, q.z, q.w = values
    return msg


def test_raw_depth_uses_tf2_and_a_missing_transform_is_said_not_guessed(
        scene, monkeypatch, capfd):
    monkeypatch.setattr(extrinsics, 'tf2_ros', Tf2StandIn)
    Tf2StandIn.buffers.clear()
    rig = RIGS['d435']
    frame = render_rig(scene, rig)
    g = Graph(MODELS[4], [Parameter('output_size', value=list(OUTPUT))])
    try:
        assert g.node.extrinsics.backend == 'tf2'
        pubs = g.connect(qos_profile_sensor_data)
        end = time.monotonic() + 60
        stamp = 1_000_000_000
        while g.node.counts['bad_frames'] == 0 and time.monotonic() < end:
            depth, color, infos = _messages(rig, frame, stamp)
            for pub, msg in zip(('depth_info', 'color_info', 'color', 'depth'),
                                infos + (color, depth)):
                pubs[pub].publish(msg)
            time.sleep(0.2)
            stamp += 33_000_000
        assert g.node.counts['bad_frames'] >= 1 and g.received['image'] == []
        err = capfd.readouterr().err
        assert (f"no transform from depth frame '{DEPTH_FRAME}' to colour frame "
                f"'{COLOR_FRAME}' on tf2") in err
        assert 'set the depth_to_color parameter' in err and 'static_transform_publisher' in err
        # The driver's static transform arrives: the next pairs are registered and served.
        buffer, = Tf2StandIn.buffers
        buffer.transforms[(COLOR_FRAME, DEPTH_FRAME)] = _transform_msg(rig_extrinsic('d435'))
        out, _ = _serve(g, rig, frame)
    finally:
        g.close()
    assert (out.width, out.height) == OUTPUT and out.header.frame_id == COLOR_FRAME


def test_the_node_finds_depth_that_sits_off_the_colour_and_moves_it_back(scene):
    # The aligned rig's depth published 24 px right of and 16 px above where it belongs
    # (12 and 8 output pixels at output_size 640x360, 3 and 2 LR pixels at 4x): the node
    # finds the offset from the edges within half an LR pixel, says so and corrects it.
    from diagnostic_msgs.msg import DiagnosticArray
    rig = RIGS['aligned']
    frames = [render_rig(scene, rig, index=i, frames=8) for i in range(8)]
    for frame in frames:
        depth = np.full_like(frame['depth'], np.nan)
        depth[:-16, 24:] = frame['depth'][16:, :-24]
        frame['depth'] = depth
    g = Graph(MODELS[4], [Parameter('output_size', value=list(OUTPUT)),
                          Parameter('diagnostics_period', value=0.5)])
    arrays = []
    g.probe.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    key = OFFSET_KEY
    try:
        pubs = g.connect(qos_profile_sensor_data)
        stamp, end, moved = 1_000_000_000, time.monotonic() + 120, None
        while moved is None and time.monotonic() < end:
            depth, color, (depth_info, color_info) = _messages(rig, frames[stamp % 8], stamp)
            for name, msg in (('depth_info', depth_info), ('color_info', color_info),
                              ('color', color), ('depth', depth)):
                pubs[name].publish(msg)
            stamp += 33_000_000
            time.sleep(0.15)
            values = [{kv.key: kv.value for kv in a.status[0].values} for a in list(arrays)]
            moved = next((v[key] for v in values if v.get(key, '+0.0, +0.0') != '+0.0, +0.0'),
                         None)
    finally:
        g.close()
    assert moved is not None, 'no correction within 120 s'
    dx, dy = (float(v) for v in moved.split(','))
    assert abs(dx - 12.0) <= 2.0 and abs(dy + 8.0) <= 2.0, moved  # half an LR pixel = 2 px


def _serve_each(model, alignment, frames, count=16):
    """
    Serve ``count`` frames of the aligned rig one at a time to a node with ``alignment``.

    Each output is awaited before the next frame. Return ({stamp: output depth}, the
    /diagnostics values in order).
    """
    from diagnostic_msgs.msg import DiagnosticArray
    g = Graph(model, [Parameter('output_size', value=list(OUTPUT)),
                      Parameter('alignment', value=alignment),
                      Parameter('diagnostics_period', value=0.5)])
    arrays = []
    g.probe.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    try:
        pubs = g.connect(qos_profile_sensor_data)
        for i in range(count):
            stamp = 1_000_000_000 + i * 100_000_000
            depth, color, (depth_info, color_info) = _messages(
                RIGS['aligned'], frames[i % len(frames)], stamp)
            served = len(g.received['image'])
            for _ in range(3):  # best effort: a lost message is sent again
                for name, msg in (('depth_info', depth_info), ('color_info', color_info),
                                  ('color', color), ('depth', depth)):
                    pubs[name].publish(msg)
                if len(g.wait_for('image', served + 1, timeout=20.0)) > served:
                    break
            assert len(g.received['image']) > served, f'no output for frame {i}: {g.node.counts}'
        time.sleep(1.5)  # the diagnostics of the last frames
    finally:
        g.close()
    outputs = {stamp_ns(m.header.stamp): image_to_array(m) for m in g.received['image']}
    return outputs, [{kv.key: kv.value for kv in a.status[0].values} for a in list(arrays)]


def _same_outputs(first, second):
    common = sorted(set(first) & set(second))
    assert len(common) == 16, (len(first), len(second))
    for stamp in common:  # the same millimetres (16UC1 in, 16UC1 out): 0.1 mm is exact
        np.testing.assert_allclose(first[stamp].astype(float), second[stamp].astype(float),
                                   atol=0.1)


@pytest.mark.slow  # two nodes, 16 frames each, over DDS
def test_on_a_calibrated_rig_the_alignment_finds_nothing_and_changes_nothing(scene, model_path):
    frames = [render_rig(scene, RIGS['aligned'], index=i, frames=8) for i in range(8)]
    auto, diagnostics = _serve_each(model_path, 'auto', frames)
    off, _ = _serve_each(model_path, 'off', frames)
    assert {d[OFFSET_KEY] for d in diagnostics} == {'+0.0, +0.0'}
    assert diagnostics[-1]['alignment'] == 'auto: edges match'  # it looked, and they do
    _same_outputs(auto, off)


@pytest.mark.slow  # two nodes, 16 frames each, over DDS
def test_a_featureless_scene_gives_no_alignment_change_and_says_why(model_path):
    # A grey wall 2 m away, seen by the aligned rig: no edges in depth or colour.
    rig = RIGS['aligned']
    flat = {'depth': np.full((rig.depth.height, rig.depth.width), 2.0, np.float32),
            'color': np.full((rig.color.height, rig.color.width, 3), 128, np.uint8)}
    auto, diagnostics = _serve_each(model_path, 'auto', [flat])
    off, _ = _serve_each(model_path, 'off', [flat])
    assert {d[OFFSET_KEY] for d in diagnostics} == {'+0.0, +0.0'}
    assert 'too few depth edges or no colour contrast' in diagnostics[-1]['alignment']
    _same_outputs(auto, off)
