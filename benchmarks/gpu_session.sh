#!/usr/bin/env bash
# Everything that needs a GPU, in one pass sized for a short lease (at most 9.5 minutes on one H100):
# the throughput table of issue 5 (Pythia shapes, profiled at width 512), then the GPU tests, then
# (where time is left) the head sweep at Pythia-70m's shape.
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

# 1. the targets: 1.5x HF sdpa+compile and MFU >= 55 % at 512 and 768, 2x HF sdpa at 128. One
# invocation, so all six compiled cells precompile together (on 2026-11-26 an H100 took 98 s for four,
# two at a time) and every timed cell starts warm.
timeout 450 "$PY" benchmarks/train_throughput.py --preset gpu --widths 512,768,128 --layers 6,12,6 \
    --impls hf-sdpa,hf-sdpa-compile,ours-compile --profile-widths 512 --precompile 3 \
    --deadline 380 --cell-timeout 100 --json "$OUT/throughput.json" \
    2>"$OUT/throughput.err" | tee "$OUT/tables.md"
echo "# benchmark done at $(elapsed) s"

# 2. the GPU tests (bf16 fused loss, logits, compiled bf16 curve vs fp32, pretrain + resume)
if [ "$(elapsed)" -lt 480 ]; then
    timeout $((570 - $(elapsed))) "$PY" -m pytest -m gpu -rP -q -p no:cacheprovider \
        tests/test_gpu.py >"$OUT/pytest_gpu.txt" 2>&1
    echo "# pytest exit $? at $(elapsed) s"
    grep -E "relative|max \|Δloss\||pretrain on cuda|passed|failed|Error" "$OUT/pytest_gpu.txt" | tail -20
fi
# 3. where time is left: the head sweep of issue 15 at Pythia-70m's shape (trunk forward vs heads)
if [ "$(elapsed)" -lt 520 ]; then
    timeout $((580 - $(elapsed))) "$PY" benchmarks/head_sweep.py --width 512 --layers 6 \
        --vocab 50304 --seq-len 2048 --device cuda --skip-ngram 2>"$OUT/head_sweep.err" |
        tee "$OUT/head_sweep.md"
fi
echo "# done at $(elapsed) s"
