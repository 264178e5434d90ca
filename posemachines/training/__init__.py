"""The train state and step, optimizer, checkpoints, distribution, metric writers and the loop."""
