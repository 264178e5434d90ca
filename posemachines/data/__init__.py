"""Datasets (tensorflow-datasets builders) and the host input pipeline."""
