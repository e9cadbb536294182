"""
Camera geometry for real RGB-D rigs, in numpy with no ROS import.

- ``camera``: intrinsics with lens distortion (``Camera``), rays and projection;
- ``transform``: rigid transforms (``Transform``);
- ``grids``: the output grid and the network's LR grid for a colour camera and scale;
- ``registration``: bringing a depth image onto the colour camera's LR grid.

Pixel coordinates follow ROS (REP 104 / image_pipeline): the centre of pixel (u, v) is at
(u, v), and resizing keeps pixel centres in place (``Camera.resized``).
"""
