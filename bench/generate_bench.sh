#!/usr/bin/env bash
# Benchmark of `matbert-worker generate` against the NumPy reference of the same work
# (bench/reference/generate_numpy.py), side by side in one run, best of $REPEATS each.
# Both write to tmpfs (/dev/shm) so that the comparison measures generation, statistics,
# tokenisation and the write() calls rather than the disk; a second part writes to the
# disk and compares with dd's sequential write rate there.
#
# Usage: bench/generate_bench.sh [N_SAMPLES]   (default 100000; m = n = 20, r = 5, prec 2)
# Env:   WORKER (default build/worker/matbert-worker), DISK_DIR (default build/bench), REPEATS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-100000}
worker=${WORKER:-build/worker/matbert-worker}
disk_dir=${DISK_DIR:-build/bench}
repeats=${REPEATS:-3}
mem_dir=$(mktemp -d /dev/shm/matbert-bench.XXXXXX)
mkdir -p "$disk_dir"
trap 'rm -rf "$mem_dir" "$disk_dir"/bench-*' EXIT

flags=(--m 20 --n 20 --r 5 --prec 2 --n-samples "$samples" --quiet)

# Seconds for the fastest of $repeats runs of "$@" (output removed between runs).
best_of() {
  local best=""
  for _ in $(seq "$repeats"); do
    rm -rf "$mem_dir"/out "$disk_dir"/bench-out
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    best=$(echo "$t0 $t1 ${best:-1e9}" | awk '{d=$2-$1; print (d<$3)?d:$3}')
  done
  echo "$best"
}

ref=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 best_of /usr/bin/python3 bench/reference/generate_numpy.py \
  --m 20 --n 20 --r 5 --prec 2 --n-samples "$samples" --output "$mem_dir/out")
one=$(best_of "$worker" generate "${flags[@]}" --threads 1 --output-dir "$mem_dir/out")
two=$(best_of "$worker" generate "${flags[@]}" --threads 2 --output-dir "$mem_dir/out")
disk=$(best_of "$worker" generate "${flags[@]}" --threads 2 --output-dir "$disk_dir/bench-out")
"$worker" generate "${flags[@]}" --threads 1 --output-dir "$mem_dir/out" >/dev/null
bytes=$(du -sb "$mem_dir/out" | cut -f1)
dd_line=$(dd if=/dev/zero of="$disk_dir/bench-dd" bs=4M count=$((bytes / 4194304 + 1)) conv=fdatasync 2>&1 | tail -1)
dd_rate=$(echo "$dd_line" | awk -F', ' '{print $NF}')
rm -f "$disk_dir/bench-dd"
# The floor on tmpfs: only writing the same number of bytes, nothing generated.
floor_start=$(date +%s.%N)
dd if=/dev/zero of="$mem_dir/dd" bs=4M count=$((bytes / 4194304 + 1)) 2>/dev/null
floor=$(echo "$floor_start $(date +%s.%N)" | awk '{print $2-$1}')
rm -f "$mem_dir/dd"

awk -v n="$samples" -v ref="$ref" -v one="$one" -v two="$two" -v disk="$disk" -v bytes="$bytes" \
  -v dd="$dd_rate" -v floor="$floor" 'BEGIN {
  printf "| run (%d matrices 20x20, r=5, prec 2, %.0f MB) | seconds | matrices/s | ratio |\n", n, bytes/1e6
  printf "| --- | --- | --- | --- |\n"
  printf "| NumPy reference, 1 thread, tmpfs | %.3f | %.0f | 1.00 |\n", ref, n/ref
  printf "| matbert-worker --threads 1, tmpfs | %.3f | %.0f | %.2f x reference |\n", one, n/one, ref/one
  printf "| matbert-worker --threads 2, tmpfs | %.3f | %.0f | %.2f x reference, %.2f x 1 thread |\n", two, n/two, ref/two, one/two
  printf "| dd of the same bytes to tmpfs (writing only: the floor) | %.3f | - | %.2f x reference at most |\n", floor, ref/floor
  printf "| matbert-worker --threads 2, disk (fsync) | %.3f | %.0f | %.0f MB/s; dd conv=fdatasync: %s |\n", disk, n/disk, bytes/1e6/disk, dd
}'
