"""Losses, and each model's inputs, targets and loss weights."""
