#!/bin/bash
# Two threads (the worker's default: the physical cores), wall seconds, once the load had dropped
# somewhat: the worker's default backend (OpenVINO bf16 here, IR and compiled shapes from the
# earlier runs, as a restarted worker) at the fast profile, batch 1 and the chart's CPU batch of 2
# (peak RSS), then one full-quality picture at 1024 (29 + 12, --warmup 0: the first call timed,
# one call: minutes), then torch eager bf16 at the fast profile.
# Run as: flock /work/notes/bench.lock bash wall2t.sh
cd /work/wt/cpu
R=bench/results/cpu-zen4-avx512bf16-2026-12-07
G="--device cpu --prior-guidance 4 --decoder-guidance 0"
FAST="--sizes 512 --prior-steps 8 --decoder-steps 4"
run() {  # name, bench arguments...
  name=$1; shift
  while [ "$(free -g | awk '/^Mem:/ {print $7}')" -lt 15 ]; do echo "waiting for memory: $(free -g | sed -n 2p)"; sleep 20; done
  echo "=== $name: lock held, $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"; free -g | sed -n 2p
  /usr/bin/time -v timeout 1200 python bench/wuerstchen_bench.py $G "$@" --json $R/$name.json 2>&1 \
    | grep --line-buffered -v "Warning\|warn\|^\s*if \|is_causal\|by_size\|return by\|loss_type"
  echo "=== $name: done $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"
}
run fast-auto-b1b2 $FAST --batches 1,2 --warmup 1 --repeats 1 --backend auto --dtype auto --ov-dir data/compile-cache/openvino-bench
run quality-auto --sizes 1024 --batches 1 --prior-steps 29 --decoder-steps 12 --warmup 0 --repeats 1 --backend auto --dtype auto --ov-dir data/compile-cache/openvino-bench
run fast-torch-bf16-2 $FAST --batches 1 --warmup 1 --repeats 1 --backend torch --dtype bfloat16 --modes eager
