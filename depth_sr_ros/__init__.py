"""depth_sr_ros: guided depth super-resolution (AHMF, PAG-Net) for ROS 2 depth cameras."""
