#!/usr/bin/env bash
# Trains on a Cloud TPU slice (one VM per worker): creates the TPU VM or reuses it, copies this
# checkout to every worker, installs it, and runs the same training command on all workers.
#
#   launch/tpu_pod.sh NAME ZONE ACCELERATOR_TYPE [posemachines.train flags ...]
#   launch/tpu_pod.sh cpm-v4 us-central2-b v4-32 --config=experiments/cpm_mpii.py \
#       --workdir=/mnt/shared/cpm_mpii
#
# Every worker runs `python -m posemachines.train --multihost=on ...`: JAX finds the other
# workers itself. The workdir must be one directory that every worker sees (a Filestore/NFS
# mount, or a bucket mounted with gcsfuse): checkpoints are written by all workers together.
# The run stops cleanly when a worker gets SIGTERM (maintenance, spot preemption): rerun this
# script with the same arguments and training resumes from the saved step.
#
# Environment: TPU_VERSION (runtime image, default tpu-ubuntu2204-base), PROJECT (gcloud
# project, default the configured one), SPOT=1 (create a spot VM), SETUP (extra shell commands
# run on each worker before training, e.g. mounting the shared workdir or copying datasets).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,18p' "$0"; exit 2
fi
NAME=$1 ZONE=$2 TYPE=$3
shift 3
VERSION=${TPU_VERSION:-tpu-ubuntu2204-base}
GCLOUD=(gcloud compute tpus tpu-vm)
COMMON=(--zone "$ZONE" ${PROJECT:+--project "$PROJECT"})

if ! "${GCLOUD[@]}" describe "$NAME" "${COMMON[@]}" >/dev/null 2>&1; then
  echo "Creating TPU VM $NAME ($TYPE, $VERSION) in $ZONE"
  "${GCLOUD[@]}" create "$NAME" "${COMMON[@]}" --accelerator-type "$TYPE" --version "$VERSION" \
    ${SPOT:+--spot}
else
  echo "Reusing TPU VM $NAME"
fi

cd "$(dirname "$0")/.."
STAGING=$(mktemp -d)
trap 'rm -rf "$STAGING"' EXIT
ARCHIVE=$STAGING/posemachines.tar.gz
tar czf "$ARCHIVE" --exclude=.git --exclude=workdirs --exclude='*.pyc' .
"${GCLOUD[@]}" scp "$ARCHIVE" "$NAME":posemachines.tar.gz "${COMMON[@]}" --worker=all

ARGS=$(printf ' %q' "$@")
"${GCLOUD[@]}" ssh "$NAME" "${COMMON[@]}" --worker=all --command "
  set -e
  mkdir -p ~/posemachines && tar xzf ~/posemachines.tar.gz -C ~/posemachines
  cd ~/posemachines
  ${SETUP:-true}
  python3 -m pip install -q -U 'jax[tpu]' -e .
  python3 -m posemachines.train --multihost=on$ARGS"
