#!/bin/bash
# All four CPU-scale analyses into one workdir (runs shared between them).
set -e
W=${1:-workdirs/analyses}
python experiments/gradients.py --workdir=$W
python experiments/schemes.py --workdir=$W
python experiments/stages.py --workdir=$W
python experiments/receptive_fields.py --workdir=$W
