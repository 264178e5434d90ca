"""Belief-map targets from keypoints, and keypoints (in image pixels) from belief maps."""
