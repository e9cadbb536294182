"""Install depth_sr_ros with pip (``pip install -e .``) or colcon (``colcon build``)."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'depth_sr_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'depth_sr_ros.data': ['sample/*/*.png', 'sample/README.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.rviz')),
        ('share/' + package_name + '/models', glob('models/*.pt') + ['models/README.md']),
    ],
    # Runtime dependencies come from rosdep (package.xml) in a ROS workspace and from
    # requirements.txt in a virtual environment; none here, so that console scripts made by
    # older setuptools do not refuse to start over a pip name that apt satisfied.
    install_requires=['setuptools'],
    python_requires='>=3.8',
    zip_safe=True,
    maintainer='depth_sr_ros maintainers',
    maintainer_email='maintainers@depth-sr-ros.invalid',
    description='Guided depth super-resolution (AHMF, PAG-Net) for ROS 2 depth cameras.',
    license='Apache-2.0',
    # colcon test runs pytest when it finds it here (extras_require for setuptools >= 72,
    # tests_require for the older setuptools of Humble).
    extras_require={'test': ['pytest']},
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'depth_sr_demo = depth_sr_ros.tools.demo:main',
            'depth_sr_train = depth_sr_ros.cli.train:main',
            'depth_sr_node = depth_sr_ros.ros.node:main',
            'depth_sr_player = depth_sr_ros.tools.player:main',
            'depth_sr_live_demo = depth_sr_ros.tools.live_demo:main',
            'depth_sr_eval = depth_sr_ros.cli.evaluate:main',
            'depth_sr_dds_check = depth_sr_ros.tools.dds_check:main',
            'depth_sr_benchmark = depth_sr_ros.tools.benchmark:main',
            'depth_sr_soak = depth_sr_ros.tools.soak:main',
            'depth_sr_export = depth_sr_ros.cli.export:main',
            'depth_sr_bag = depth_sr_ros.cli.bag:main',
            'depth_sr_rig_bag = depth_sr_ros.tools.rig_bag:main',
            'depth_sr_zoo = depth_sr_ros.tools.zoo:main',
            'depth_sr_blend = depth_sr_ros.cli.blend:main',
            'depth_sr_select = depth_sr_ros.cli.choose:main',
        ],
    },
)
