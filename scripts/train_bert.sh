#!/usr/bin/env bash
# Launches NGPU ranks of `matbert-worker train` on this host under the torchrun environment
# contract (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the
# interface FLAME-style trainers use:
#
#   NGPU=2 scripts/train_bert.sh --training.steps 1000
#   CONFIG_FILE=configs/my_config.toml NGPU=2 scripts/train_bert.sh
#
# Arguments are passed to every rank (spec overrides, --quiet, ...). On a host without GPUs
# NGPU counts CPU ranks, and each rank takes cores/NGPU threads. If a rank fails, the
# others are stopped (SIGTERM, then SIGKILL after $GRACE seconds) and the launcher exits with
# that rank's status; SIGTERM/SIGINT to the launcher is passed to every rank, which stop
# together after one checkpoint.
# Env: NGPU (1), CONFIG_FILE (configs/bert_matcomp_cpu.toml without GPUs, else
# configs/bert_matcomp.toml), RUN_DIR (runs/<config>-<UTC time>; --run-dir DIR among the
# arguments does the same), MASTER_PORT (a free port),
# WORKER (build/worker/matbert-worker), GRACE (30).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

ngpu=${NGPU:-1}
if ! [[ "$ngpu" =~ ^[1-9][0-9]*$ ]]; then
  echo "train_bert.sh: NGPU must be a positive integer, got '$ngpu'" >&2
  exit 2
fi
if [ -z "${CONFIG_FILE:-}" ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    CONFIG_FILE=$repo/configs/bert_matcomp.toml
  else
    CONFIG_FILE=$repo/configs/bert_matcomp_cpu.toml
  fi
fi
worker=${WORKER:-$repo/build/worker/matbert-worker}
if [ ! -x "$worker" ]; then
  echo "train_bert.sh: $worker not found; build first with scripts/build.sh" >&2
  exit 2
fi
# The run directory: --run-dir among the arguments (taken out of them: every rank gets the one
# below), else RUN_DIR, else runs/<config>-<UTC time>.
args=()
run_dir=${RUN_DIR:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir)
      [ $# -ge 2 ] || { echo "train_bert.sh: --run-dir needs a directory" >&2; exit 2; }
      run_dir=$2
      shift ;;
    --run-dir=*) run_dir=${1#--run-dir=} ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]}"
run_dir=${run_dir:-runs/$(basename "$CONFIG_FILE" .toml)-$(date -u +%Y%m%d-%H%M%S)}
port=${MASTER_PORT:-$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
grace=${GRACE:-30}

pids=()
for ((rank = 0; rank < ngpu; rank++)); do
  RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=$ngpu LOCAL_WORLD_SIZE=$ngpu MASTER_ADDR=127.0.0.1 \
    MASTER_PORT=$port "$worker" train --config "$CONFIG_FILE" --run-dir "$run_dir" "$@" &
  pids+=($!)
done
echo "train_bert.sh: $ngpu rank(s), pids ${pids[*]}, run directory $run_dir" >&2

forward() { kill -TERM "${pids[@]}" 2>/dev/null; }
trap forward TERM INT

# Wait for the ranks; the first failure stops the rest.
status=0
live=("${pids[@]}")
while [ "${#live[@]}" -gt 0 ]; do
  done_pid=""
  wait -n -p done_pid "${live[@]}"
  rc=$?
  [ -z "$done_pid" ] && continue  # interrupted by a trapped signal
  live=($(printf '%s\n' "${live[@]}" | grep -vx "$done_pid"))
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    echo "train_bert.sh: rank with pid $done_pid exited with status $rc; stopping the others" >&2
    [ "${#live[@]}" -gt 0 ] && kill -TERM "${live[@]}" 2>/dev/null
    deadline=$((SECONDS + grace))
  fi
  if [ "$status" -ne 0 ] && [ "${#live[@]}" -gt 0 ] && [ "$SECONDS" -ge "${deadline:-0}" ]; then
    kill -KILL "${live[@]}" 2>/dev/null
  fi
done
exit "$status"
