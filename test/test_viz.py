"""Pictures for people: labels that fit, a colour bar in metres, a crop where the edges are."""

import cv2
from depth_sr_ros.viz import (
    colorbar, colorize, edge_window, image_format_problem, label_scale, stack_rows, tile,
    TILE_WIDTH, write_image)
import numpy as np


def test_a_long_label_is_shrunk_to_fit_its_tile():
    label = 'depth as sent 224x172 (camera_depth_optical_frame), a long frame name'
    scale = label_scale(label, TILE_WIDTH - 8)
    (width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    assert scale < 0.45 and width <= TILE_WIDTH - 8
    assert label_scale('short', TILE_WIDTH) == 0.45
    assert tile(np.zeros((90, 160, 3), np.uint8), label).shape == (180, TILE_WIDTH, 3)


def test_the_colour_bar_runs_from_far_at_the_top_to_near_at_the_bottom():
    bar = colorbar(0.5, 3.0, 200)
    assert bar.shape == (200, 64, 3)
    np.testing.assert_array_equal(bar[0, 10], colorize(np.float32([[3.0]]), 0.5, 3.0)[0, 0])
    np.testing.assert_array_equal(bar[-1, 10], colorize(np.float32([[0.5]]), 0.5, 3.0)[0, 0])


def test_the_crop_window_lies_on_the_strongest_depth_edge():
    depth = np.full((360, 640), 2.0, np.float32)
    depth[200:, 400:] = 1.0  # one corner of a near box
    top, left = edge_window(depth, (100, 100))
    assert 140 <= top <= 200 and 340 <= left <= 400  # the window holds the corner at (200, 400)
    assert stack_rows([np.zeros((10, 30, 3)), np.zeros((5, 20, 3))]).shape == (15, 30, 3)


def test_a_picture_in_a_format_with_no_encoder_is_refused_not_raised(tmp_path):
    # cv2.imencode raises for an unknown extension; write_image says False, as imwrite does.
    assert not write_image(str(tmp_path / 'x.jpgx'), np.zeros((4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())
    assert write_image(str(tmp_path / 'x.png'), np.zeros((4, 4, 3), np.uint8))
    assert image_format_problem(str(tmp_path / 'x.jpg')) == ''
    assert "--figure 'a.jpgx': no image format for the extension '.jpgx'" in (
        image_format_problem('a.jpgx', '--figure'))
