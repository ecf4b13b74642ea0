#!/usr/bin/env bash
# Everything that needs a GPU, in one pass sized for a short lease (about 8 minutes on one H100):
# the throughput table of issue 5 (Pythia shapes, profiled at width 512), then the GPU tests.
# Each stage has a deadline, so a slow stage costs the later ones rather than the whole run;
# results land in $OUT (default results/gpu_session) as they are made.
#
#   bash benchmarks/gpu_session.sh            # on a GPU node, from the repository root
set -u
OUT=${OUT:-results/gpu_session}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
begin=$(date +%s)
elapsed() { echo $(($(date +%s) - begin)); }

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "$PY" -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. the targets: 1.5x HF sdpa+compile and MFU >= 55 % at 512 and 768; then 2x HF sdpa at 128
timeout 250 "$PY" benchmarks/train_throughput.py --preset gpu --widths 512,768 --layers 6,12 \
    --impls hf-sdpa,hf-sdpa-compile,ours-compile --profile-widths 512 --precompile 2 \
    --deadline 200 --cell-timeout 100 --json "$OUT/throughput.json" \
    2>"$OUT/throughput.err" | tee -a "$OUT/tables.md"
echo "# stage 1 done at $(elapsed) s"
if [ "$(elapsed)" -lt 290 ]; then
    timeout $((380 - $(elapsed))) "$PY" benchmarks/train_throughput.py --preset gpu --widths 128 \
        --layers 6 --impls hf-sdpa,hf-sdpa-compile,ours,ours-compile --precompile 2 \
        --deadline 60 --cell-timeout 60 --json "$OUT/throughput_128.json" \
        2>>"$OUT/throughput.err" | tee -a "$OUT/tables.md"
fi
echo "# stage 1b done at $(elapsed) s"

# 2. the GPU tests (bf16 fused loss, logits, compiled bf16 curve vs fp32, pretrain + resume)
if [ "$(elapsed)" -lt 400 ]; then
    timeout $((450 - $(elapsed))) "$PY" -m pytest -m gpu -rP -q -p no:cacheprovider \
        tests/test_gpu.py >"$OUT/pytest_gpu.txt" 2>&1
    echo "# pytest exit $? at $(elapsed) s"
    grep -E "relative|max \|Δloss\||pretrain on cuda|passed|failed|Error" "$OUT/pytest_gpu.txt" | tail -20
fi

# 3. if time is left: Pythia 410M's shape
if [ "$(elapsed)" -lt 330 ]; then
    timeout $((450 - $(elapsed))) "$PY" benchmarks/train_throughput.py --preset gpu --widths 1024 \
        --layers 24 --impls hf-sdpa,ours-compile --cell-timeout 90 \
        --json "$OUT/throughput_1024.json" 2>>"$OUT/throughput.err" | tee -a "$OUT/tables.md"
fi
echo "# done at $(elapsed) s"
