#!/bin/bash
# Run A: fast profile at 512, torch bf16 (the worker's default dtype) then OpenVINO bf16, one after the other.
cd /work/wt/ov
echo "lock taken $(date -u)"
COMMON="--device cpu --sizes 512 --batches 1 --prior-steps 8 --decoder-steps 4 --warmup 1 --repeats 1"
/usr/bin/time -v python bench/wuerstchen_bench.py $COMMON --backend torch --modes eager --json /tmp/ovruns/A-torch-bf16.json 2>&1 | grep -v "Warning\|warn"
/usr/bin/time -v python bench/wuerstchen_bench.py $COMMON --backend openvino --ov-dir data/compile-cache/openvino-bench --json /tmp/ovruns/A-ov-bf16.json 2>&1 | grep -v "Warning\|warn"
echo "done $(date -u)"
