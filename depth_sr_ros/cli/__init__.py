"""The offline commands: depth_sr_train, depth_sr_eval, depth_sr_export, depth_sr_bag."""
