#!/bin/bash
# Run B: OpenVINO bf16 again on the IR and compiled cache run A left (a restarted worker's start).
cd /work/wt/ov
echo "lock taken $(date -u)"
COMMON="--device cpu --sizes 512 --batches 1 --prior-steps 8 --decoder-steps 4 --warmup 1 --repeats 1"
/usr/bin/time -v timeout 780 python bench/wuerstchen_bench.py $COMMON --backend openvino --ov-dir data/compile-cache/openvino-bench --no-flops --json /tmp/ovruns/B-ov-bf16-restart.json 2>&1 | grep --line-buffered -v "Warning\|warn"
echo "done $(date -u)"
