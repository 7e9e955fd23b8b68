#!/bin/bash
# Run C: torch eager bf16 then OpenVINO bf16 (IR and compiled cache from run A: a restarted worker), one after the other.
cd /work/wt/ov
echo "lock taken $(date -u)"; uptime
COMMON="--device cpu --sizes 512 --batches 1 --prior-steps 8 --decoder-steps 4 --warmup 1 --repeats 2 --no-flops"
/usr/bin/time -v timeout 400 python bench/wuerstchen_bench.py $COMMON --backend torch --modes eager --json /tmp/ovruns/C-torch-bf16.json 2>&1 | grep --line-buffered -v "Warning\|warn"
uptime
/usr/bin/time -v timeout 400 python bench/wuerstchen_bench.py $COMMON --backend openvino --ov-dir data/compile-cache/openvino-bench --json /tmp/ovruns/C-ov-bf16.json 2>&1 | grep --line-buffered -v "Warning\|warn"
echo "done $(date -u)"; uptime
