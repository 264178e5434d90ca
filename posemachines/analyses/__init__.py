"""The papers' analyses: a skip-if-finished runner and the figures and tables of each analysis."""
