"""posemachines: sequential-prediction human pose estimation (CPM and recurrent) in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name='posemachines',
    version='0.1.0',
    description='Convolutional Pose Machines and Recurrent Human Pose Estimation in JAX/Flax',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    # experiments/ (the configs and the analyses' scripts) stays a top-level folder of the
    # checkout and is installed as posemachines.experiments, so that --config=NAME finds its
    # configs from any directory.
    packages=find_packages(include=['posemachines', 'posemachines.*']) + [
        'posemachines.experiments'],
    package_dir={'posemachines.experiments': 'experiments'},
    package_data={'posemachines.data': ['*.json']},
    python_requires='>=3.10',
    install_requires=[
        'jax>=0.8',
        'flax>=0.10',
        'optax>=0.2.8',  # optax.tree.norm
        'orbax-checkpoint',
        'tensorflow-cpu',
        'tensorflow-datasets>=4.9',
        'importlib_resources',
        'tensorboard',
        'absl-py',
        'ml-collections',
        'numpy',
        'scipy',
        'matplotlib',
        'pillow',
        'pycocotools',
        'tqdm',
    ],
    extras_require={'test': ['pytest', 'pytest-xdist', 'import-linter'], 'video': ['imageio', 'imageio-ffmpeg']},
)
