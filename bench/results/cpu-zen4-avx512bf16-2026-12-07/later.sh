#!/bin/bash
# The fast profile again on two threads once the load had dropped (00:10 UTC): the worker's
# default (OpenVINO bf16, restarted: IR and compiled shapes from the cache), then torch eager bf16.
# Run as: flock /work/notes/bench.lock bash later.sh
cd /work/wt/cpu
R=bench/results/cpu-zen4-avx512bf16-2026-12-07
FAST="--device cpu --prior-guidance 4 --decoder-guidance 0 --sizes 512 --prior-steps 8 --decoder-steps 4 --batches 1 --warmup 1 --repeats 2"
run() {  # name, bench arguments...
  name=$1; shift
  while [ "$(free -g | awk '/^Mem:/ {print $7}')" -lt 15 ]; do echo "waiting for memory: $(free -g | sed -n 2p)"; sleep 20; done
  echo "=== $name: lock held, $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"; free -g | sed -n 2p
  /usr/bin/time -v timeout 600 python bench/wuerstchen_bench.py $FAST "$@" --json $R/$name.json 2>&1 \
    | grep --line-buffered -v "Warning\|warn\|^\s*if \|is_causal\|by_size\|return by\|loss_type"
  echo "=== $name: done $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"
}
run fast-auto-later --backend auto --dtype auto --ov-dir data/compile-cache/openvino-bench
run fast-torch-bf16-later --backend torch --dtype bfloat16 --modes eager
