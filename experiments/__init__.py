"""Experiment configs (``--config=NAME``) and the scripts of the papers' analyses.

A folder of the checkout, installed with the package as ``posemachines.experiments`` so that
``--config=cpm_mpii`` finds ``cpm_mpii.py`` from any directory.
"""
