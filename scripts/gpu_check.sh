#!/usr/bin/env bash
# Device check for a CUDA machine, < 5 minutes in all (issue 7):
#   1. the test suite with the conftest models on cuda (FDBENCH_TEST_DEVICE=cuda);
#   2. `fdbench bench` on the random paper-size model at batch 1, 64 and 512 for the
#      uncached sampler, E2-CRF and a peer (PEER, default fora; "fixed" when no peers),
#      in fp32 and in bf16, printing wall and FLOP ratios and FLOP efficiency;
#   2b. scripts/efficiency.py (issue 17): wall/FLOP efficiency of E2-CRF at batch 1 and
#      64 on the paper preset and the shipped model, interleaved, with the per-step stage
#      profile (JSON in OUT_DIR/efficiency.json);
#   3. with GPU_CHECK_COMPILE=1 (not inside the 5 minutes): torch.compile/CUDA graphs of the
#      uncached sampler, and the efficiency script with the caches' static-shape compiled
#      step path (fdbench/cache/compiled.py) against the compiled uncached sampler.
# Usage: scripts/gpu_check.sh [--device cpu] [OUT_DIR]
#   (env: PEER, STEPS, TEST_TIMEOUT, BENCH_TIMEOUT, EFF_TIMEOUT)
# --device cpu runs only 2b, as a smoke run (--quick) on the CPU: the script's own check.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE=${2:?--device needs cpu or cuda}; shift 2; fi
OUT=${1:-${OUT:-runs/gpu_check}}
STEPS=${STEPS:-100}
mkdir -p "$OUT"
if [ "$DEVICE" = cpu ]; then
  echo "== 2b. scripts/efficiency.py --quick on the CPU (smoke run)"
  timeout "${EFF_TIMEOUT:-120}" python scripts/efficiency.py --quick --device cpu \
    --out "$OUT/efficiency.json"
  status=$?
  echo "gpu_check: exit status $status (results under $OUT)"
  exit $status
fi
python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
  "gpu_check: torch sees no CUDA device; this check needs one")' || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name())'
PEER=${PEER:-$(python -c 'from fdbench.cache import parse_policy as p
try: p("fora", 100); print("fora")
except Exception: print("fixed")')}
status=0

echo "== 1. test suite on cuda"
FDBENCH_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-120}" python -m pytest -q -x \
  -p no:cacheprovider tests/ 2>&1 | tail -15 || status=1

for precision in fp32 bf16; do
  echo "== 2. fdbench bench, $precision, batches 1 64 512, T=$STEPS: uncached, e2crf, $PEER"
  # 64 quality samples on the GPU; timing 3 interleaved rounds after warm-up
  timeout "${BENCH_TIMEOUT:-75}" python -m fdbench bench --random-model paper --device cuda \
    --precision "$precision" --policies e2crf "$PEER" --batch-sizes 1 64 512 \
    --steps "$STEPS" --num-samples 64 --rounds 3 --n-boot 20 --threads 4 \
    --out "$OUT/$precision" > "$OUT/$precision.log" 2>&1 || status=1
  tail -3 "$OUT/$precision.log"
  python scripts/gpu_summary.py "$OUT/$precision/results.jsonl" || status=1
done
echo "== 2b. scripts/efficiency.py on cuda, T=$STEPS, batch 1 64: e2crf vs uncached"
timeout "${EFF_TIMEOUT:-150}" python scripts/efficiency.py --device cuda --steps "$STEPS" \
  --repeats 3 --warmup 5 --batch-sizes 1 64 --threads 4 --profile-steps 20 \
  --out "$OUT/efficiency.json" > "$OUT/efficiency.log" 2>&1 || status=1
tail -30 "$OUT/efficiency.log"
if [ "${GPU_CHECK_COMPILE:-0}" = 1 ]; then  # optional: compile time is minutes per shape
  echo "== 3. torch.compile (reduce-overhead: CUDA graphs) vs eager uncached, batch 1 64"
  timeout "${COMPILE_TIMEOUT:-240}" python -m fdbench bench --random-model paper \
    --device cuda --policies fixed --batch-sizes 1 64 --steps "$STEPS" --num-samples 16 \
    --rounds 3 --n-boot 20 --threads 4 --compile --out "$OUT/compile" \
    > "$OUT/compile.log" 2>&1 || status=1
  python scripts/gpu_summary.py "$OUT/compile/results.jsonl" || status=1
  timeout "${COMPILE_TIMEOUT:-240}" python scripts/efficiency.py --device cuda --compile \
    --steps "$STEPS" --repeats 3 --warmup 5 --batch-sizes 1 64 --threads 4 --no-profile \
    --out "$OUT/efficiency_compiled.json" > "$OUT/efficiency_compiled.log" 2>&1 || status=1
  tail -12 "$OUT/efficiency_compiled.log"
fi
echo "gpu_check: exit status $status (results under $OUT)"
exit $status
