#!/bin/bash
# Stage by stage on ONE thread (bench/wuerstchen_stages.py --threads 1: the adapter's pipelines,
# real architecture, random weights), so that the figure the machine's load changes least (the
# process's CPU seconds) can be read: the machine is shared by other sessions and a CI run (load
# average 7-13 on its 2 cores). The fast profile (512, 8 guided prior evaluations + 4 decoder
# steps) per backend and dtype, then one picture at 1024 with 2 + 2 steps per backend, from which
# the balanced (16+8) and quality (29+12) profiles are composed. OpenVINO: two calls (the first
# compiles the shapes for one thread); torch eager: the first call timed.
# Run as: flock /work/notes/bench.lock bash steps1t.sh
cd /work/wt/cpu
COMMON="--prior-guidance 4 --decoder-guidance 0 --threads 1"
FAST="--size 512 --prior-steps 8 --decoder-steps 4"
BIG="--size 1024 --prior-steps 2 --decoder-steps 2"
OV="--backend openvino --dtype auto --repeats 1 --ov-dir data/compile-cache/openvino-bench"
run() {  # name, arguments...
  name=$1; shift
  # a real-size run holds about 13 GiB: start it only with 15 GiB available (wait for it)
  while [ "$(free -g | awk '/^Mem:/ {print $7}')" -lt 15 ]; do echo "waiting for memory: $(free -g | sed -n 2p)"; sleep 20; done
  echo "=== $name: lock held, $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"; free -g | sed -n 2p
  /usr/bin/time -v timeout 1500 python bench/wuerstchen_stages.py $COMMON "$@" 2>&1 \
    | grep --line-buffered -v "Warning\|warn\|^\s*if \|is_causal\|by_size\|return by\|loss_type"
  echo "=== $name: done $(date -u +%H:%M:%S) UTC, uptime: $(uptime)"
}
run fast-openvino-bf16-t1 $FAST $OV
run fast-torch-bf16-t1 $FAST --backend torch --dtype bfloat16 --repeats 0
run 1024-openvino-bf16-t1 $BIG $OV
run 1024-torch-bf16-t1 $BIG --backend torch --dtype bfloat16 --repeats 0
run fast-torch-fp32-t1 $FAST --backend torch --dtype float32 --repeats 0
