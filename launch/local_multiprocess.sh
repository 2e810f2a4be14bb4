#!/bin/bash
# N processes on this machine acting as N hosts (CPU devices), to exercise the
# multi-host code path without a cluster:
#   launch/local_multiprocess.sh 2 configs/simclr.py:smoke --workdir=/tmp/mp_run
# Ctrl-C or SIGTERM to this script reaches every worker as SIGTERM: they agree on
# a step, checkpoint it and exit with status 75; rerun the command to resume.
set -euo pipefail
NUM=${1:?usage: local_multiprocess.sh NUM_PROCESSES CONFIG [main.py flags...]}
CONFIG=${2:?config}
shift 2
PORT=${PORT:-$((20000 + RANDOM % 10000))}
export JAX_PLATFORMS=cpu
export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-2}"
pids=()
# Background workers of a non-interactive shell ignore SIGINT, so forward both.
forward() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap forward INT TERM
for ((i = 0; i < NUM; i++)); do
  python main.py --config="${CONFIG}" --coordinator_address="localhost:${PORT}" \
    --num_processes="${NUM}" --process_id="${i}" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  rc=0
  wait "${pid}" || rc=$?
  # A trapped signal interrupts `wait`; wait again until the worker has exited.
  while kill -0 "${pid}" 2>/dev/null; do
    rc=0
    wait "${pid}" || rc=$?
  done
  if [[ ${rc} -ne 0 && ${status} -eq 0 ]]; then status=${rc}; fi
done
exit "${status}"
