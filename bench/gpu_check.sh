#!/usr/bin/env bash
# The Würstchen GPU benchmark as one bounded run (about 9 minutes on an H200), for a lent GPU
# machine or any CUDA host with torch, transformers and diffusers installed:
#
#   OUT=results bash bench/gpu_check.sh
#
# 1. eager and eager-cl (channels-last) at 1024 and 512, batches 1, 8, 16;
# 2. compiled-cl (torch.compile, reduce-overhead: CUDA graphs) at 1024, batches 1 and 8;
#    if that run measured nothing, the default compile mode at batch 8 instead.
# Each part is bounded (--max-seconds and timeout) so a slow compile cannot eat the rest; results
# land in $OUT as JSON while they are measured, and a summary table is printed last.
set -u
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor}
started=$SECONDS
budget=${GPU_CHECK_SECONDS:-540}
left() { echo $((budget - (SECONDS - started))); }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch, transformers, diffusers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__)"
} 2>&1 | tee "$OUT/env.txt"

timeout $(( $(left) - 300 )) python3 bench/wuerstchen_bench.py --modes eager,eager-cl --sizes 1024,512 \
  --batches 1,8,16 --repeats 2 --max-seconds 200 --json "$OUT/eager.json" 2>&1 | tee "$OUT/eager.log"

timeout $(( $(left) - 15 )) python3 bench/wuerstchen_bench.py --modes compiled-cl --sizes 1024 \
  --compile-batches 1,8 --compile-mode reduce-overhead --warmup 3 --repeats 3 \
  --max-seconds $(( $(left) - 150 )) --compile-cache-dir /tmp/compile-cache \
  --json "$OUT/compiled.json" 2>&1 | tee "$OUT/compiled.log"

if ! grep -q '"images_per_s"' "$OUT/compiled.json" 2>/dev/null && [ "$(left)" -gt 150 ]; then
  timeout $(( $(left) - 10 )) python3 bench/wuerstchen_bench.py --modes compiled-cl --sizes 1024 \
    --compile-batches 8 --no-flops --compile-cache-dir /tmp/compile-cache-default \
    --json "$OUT/compiled-default.json" 2>&1 | tee "$OUT/compiled-default.log"
fi

python3 - "$OUT" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    data = json.loads(path.read_text())
    for row in data.get("rows", []):
        if "images_per_s" in row:
            print(f"{path.stem:>16} {row['mode']:>11} {row['size']:>4} b{row['batch']:<2} "
                  f"{row['s_per_image']:.3f} s/image {row['images_per_s']:.2f} img/s "
                  f"first {row['first_call_s']:.1f}s peak {row.get('peak_gib') or 0:.1f} GiB "
                  f"{row.get('tflops_per_s') or 0:.0f} TFLOP/s runs {[round(t, 3) for t in row['runs_s']]}")
        else:
            print(f"{path.stem:>16} {row}")
EOF
echo "gpu_check: $((SECONDS - started)) s"
