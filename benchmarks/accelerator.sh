#!/usr/bin/env bash
# Accelerator check for one GPU (or TPU) in under 8 minutes: matmul ceilings (bf16, fp32), the
# released 6-stage CPM's train step at 368x368, batch 16 and 32, fp32 and bf16: img/s, MFU
# against the ceiling of its precision, peak device memory; the training loop against the bare
# step; the exported artifact on the accelerator against the CPU. See benchmarks/accelerator.py.
#
#   benchmarks/accelerator.sh            # on the accelerator
#   benchmarks/accelerator.sh --tiny     # a small model in seconds: runs on a CPU too
#
# Extra arguments go to accelerator.py (--batch_sizes=, --precisions=, --steps=, --json_out=).
set -euo pipefail
cd "$(dirname "$0")/.."
# Measurements share a budget of 450 s; the whole run is cut at 470 s (under 8 minutes).
exec timeout --signal=TERM 470 python benchmarks/accelerator.py --budget_s=450 "$@"
