"""The ROS 2 side: message conversions, pairing, the per-frame pipeline and the node."""
