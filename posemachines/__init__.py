"""posemachines: Convolutional Pose Machines and Recurrent Human Pose Estimation in JAX/Flax."""

__version__ = '0.1.0'
