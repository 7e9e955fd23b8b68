#!/bin/bash
# Fast profile (512, 8 guided prior evaluations + 4 decoder steps), full pipeline with PNG, real
# architecture with random weights: the worker's default (--backend auto --dtype auto), then torch
# bf16, then torch fp32, one after the other. Run as: flock /work/notes/bench.lock bash fast.sh
cd /work/wt/cpu
R=bench/results/cpu-zen4-avx512bf16-2026-12-07
COMMON="--device cpu --sizes 512 --batches 1 --prior-steps 8 --decoder-steps 4 --prior-guidance 4 --decoder-guidance 0 --warmup 1 --repeats 1"
run() {  # name, bench arguments...
  name=$1; shift
  echo "=== $name: lock held, $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"; free -g | sed -n 2p
  /usr/bin/time -v timeout 900 python bench/wuerstchen_bench.py $COMMON "$@" --json $R/$name.json 2>&1 \
    | grep --line-buffered -v "Warning\|warn"
  echo "=== $name: done $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"
}
run fast-auto --backend auto --dtype auto --ov-dir data/compile-cache/openvino-bench
run fast-torch-bf16 --backend torch --dtype bfloat16 --modes eager
run fast-torch-fp32 --backend torch --dtype float32 --modes eager
