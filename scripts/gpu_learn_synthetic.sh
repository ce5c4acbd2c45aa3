#!/usr/bin/env bash
# The measured GPU learning session of docs/learning.md, in one device call (after the two calls that carry the
# SmolLM2 GGUF parts, ../shared/device/README.md):
#
#   source scripts/gpu_learn_setup.sh && bash scripts/gpu_learn_synthetic.sh [TRAIN_MINUTES]
#
# 1. the base model's greedy accuracy on the 500 held-out problems with 512 new tokens (so that truncation does
#    not decide the "before" column), in the background while training starts;
# 2. configs/gpu/smollm2-135m-synthetic.yaml trained for TRAIN_MINUTES (default 6) with held-out evals every 25
#    steps at 256 tokens, then the final adapter evaluated on the same 500 problems with 512 new tokens;
# 3. $OUT/base-512.tar.gz and $OUT/syn-recipe.records.tar.gz (summaries, per-problem samples, metrics, logs) and
#    $OUT/syn-recipe.adapter.tar.part?? (the trained adapter: cat the parts | tar -x).
set -euo pipefail
minutes=${1:-6}
out=${OUT:-gpu-out}; mkdir -p "$out"
config=configs/gpu/smollm2-135m-synthetic.yaml
python3 -m grpo.cli eval smollm2-135m-instruct --config "$config" --max-new-tokens 512 --batch-size 500 \
  --out /tmp/base-512 > /tmp/base-512.log 2>&1 &
base=$!
EVAL_TOKENS=512 bash scripts/gpu_learn.sh syn-recipe "$config" 400 train.time_limit_minutes="$minutes"
wait "$base" || { echo "[gpu_learn_synthetic] base eval failed; end of its log:"; tail -n 5 /tmp/base-512.log; }
mkdir -p /tmp/base-512 && cp /tmp/base-512.log /tmp/base-512/console.log
tar -C /tmp -czf "$out/base-512.tar.gz" base-512
# the trained adapter, in parts below the 16 MiB a file may have on its way back
tar -C "${GRPO_RUNS:-/tmp/grpo-runs}/syn-recipe" -c adapter | split -b 15m -d - "$out/syn-recipe.adapter.tar.part"
grep -h "accuracy" /tmp/base-512/summary.md 2>/dev/null | sed "s/^/[gpu_learn_synthetic] base, 512 tokens: /" || true
