#!/usr/bin/env bash
# First contact with matbert: installs dependencies, builds, starts matbertd with its
# embedded defaults (unless one already answers at $MATBERT_ADDR), submits the CPU-sized
# training job configs/bert_matcomp_cpu.toml, streams its metrics to the end, and says where
# the checkpoint is and how to download it. Idempotent: a second run reuses the daemon.
# Env: QUICKSTART_STEPS (300), MATBERT_ADDR (localhost:50051),
#      QUICKSTART_STATE_DIR (var/matbert), QUICKSTART_STOP_DAEMON (1 = stop the daemon it
#      started when done; CI uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
# Only what this script runs (not the tests, not the LibTorch 2.x trainer of scripts/test.sh).
scripts/build.sh --target matbertd --target matbertctl --target matbert-worker

export MATBERT_ADDR=${MATBERT_ADDR:-localhost:50051}
state=${QUICKSTART_STATE_DIR:-var/matbert}
ctl=build/client/matbertctl
started=""
if ! "$ctl" cluster >/dev/null 2>&1; then
  mkdir -p "$state"
  echo "starting matbertd on $MATBERT_ADDR (state in $state, log in $state/matbertd.log)"
  nohup build/server/matbertd --listen "$MATBERT_ADDR" --state-dir "$state" \
    --spec-root configs >>"$state/matbertd.log" 2>&1 &
  echo $! >"$state/matbertd.pid"
  started=$!
  for _ in $(seq 50); do
    "$ctl" cluster >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! kill -0 "$started" 2>/dev/null; then
    echo "matbertd did not start; its log ($state/matbertd.log) ends with:" >&2
    tail -n 5 "$state/matbertd.log" >&2
    exit 1
  fi
fi
stop_daemon() {
  if [[ -n "$started" && "${QUICKSTART_STOP_DAEMON:-0}" == 1 ]]; then
    kill "$started" 2>/dev/null || true
    wait "$started" 2>/dev/null || true
  fi
}
trap stop_daemon EXIT
"$ctl" cluster
echo

steps=${QUICKSTART_STEPS:-300}
job=$("$ctl" submit configs/bert_matcomp_cpu.toml --quiet --name quickstart \
  --training.steps "$steps" \
  --training.log_every $(((steps + 29) / 30)) --training.eval_every $((steps / 3)) \
  --checkpoint.every $((steps / 2)))
echo "submitted job $job; following it (Ctrl-C stops following, not the job)"
status=0
"$ctl" watch "$job" || status=$?
echo
if [[ $status == 0 ]]; then
  echo "Next: matbertctl checkpoints $job      # every checkpoint with its eval RMSE"
  echo "      matbertctl download $job        # the latest, SHA-256 verified"
  echo "      matbertctl logs $job --tail 20  # the rank's output"
  echo "(matbertctl is build/client/matbertctl; matbertd keeps running at $MATBERT_ADDR:"
  echo " stop it with: kill \$(cat $state/matbertd.pid))"
fi
exit $status
