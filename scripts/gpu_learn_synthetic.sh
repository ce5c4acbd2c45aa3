#!/usr/bin/env bash
# The measured GPU learning session of docs/learning.md, one chunk per device call (after the call that carries the
# first SmolLM2 GGUF part, ../shared/device/README.md):
#
#   source scripts/gpu_learn_setup.sh && bash scripts/gpu_learn_synthetic.sh TRAIN_MINUTES [final]
#
# Each call trains for TRAIN_MINUTES (a fresh run, or a --resume on a warm machine or from carried parts):
#   syn-recipe  configs/gpu/smollm2-135m-synthetic.yaml as shipped, on GPU 0;
#   syn-16gen   the same with 16 completions per prompt (8 prompts x 16 = 128 per step), on GPU 1 when the machine
#               has a second GPU: an ablation at equal wall-clock time.
# The first call also evaluates the base model greedily on the 500 held-out problems with 512 new tokens (so that
# truncation does not decide the "before" column), in the background on GPU 0. With `final`, each run's adapter is
# evaluated on the same 500 problems with 512 new tokens and comes back in parts below 16 MiB.
# Leaves in $OUT: base-512.tar.gz (first call), NAME.records.tar.gz (config, metrics, logs, evals) per run and,
# with `final`, NAME.adapter.tar.part?? (cat the parts | tar -x).
set -euo pipefail
minutes=${1:?usage: $0 TRAIN_MINUTES [final]}
final=${2:-}
out=${OUT:-gpu-out}; mkdir -p "$out"
config=configs/gpu/smollm2-135m-synthetic.yaml
export FINAL_EVAL=0 EVAL_TOKENS=512
[ "$final" = final ] && FINAL_EVAL=1
pids=()
if [ ! -d /tmp/base-512 ]; then
  ( CUDA_VISIBLE_DEVICES=0 python3 -m grpo.cli eval smollm2-135m-instruct --config "$config" --max-new-tokens 512 \
      --batch-size 500 --out /tmp/base-512 > /tmp/base-512.log 2>&1 || echo "[gpu_learn_synthetic] base eval failed"
    mkdir -p /tmp/base-512 && cp /tmp/base-512.log /tmp/base-512/console.log
    tar -C /tmp -czf "$out/base-512.tar.gz" base-512
    grep -h "accuracy" /tmp/base-512/summary.md | sed "s/^/[gpu_learn_synthetic] base, 512 tokens: /" || true ) &
  pids+=($!)
fi
CUDA_VISIBLE_DEVICES=0 bash scripts/gpu_learn.sh syn-recipe "$config" 400 train.time_limit_minutes="$minutes" \
  > /tmp/syn-recipe.out 2>&1 &
pids+=($!)
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  CUDA_VISIBLE_DEVICES=1 bash scripts/gpu_learn.sh syn-16gen "$config" 400 train.time_limit_minutes="$minutes" \
    train.num_generations=16 train.per_device_train_batch_size=32 > /tmp/syn-16gen.out 2>&1 &
  pids+=($!)
fi
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for name in syn-recipe syn-16gen; do
  [ -f /tmp/$name.out ] || continue
  cat /tmp/$name.out
  if [ "$final" = final ] && [ -d "${GRPO_RUNS:-/tmp/grpo-runs}/$name/adapter" ]; then
    tar -C "${GRPO_RUNS:-/tmp/grpo-runs}/$name" -c adapter | split -b 15m -d - "$out/$name.adapter.tar.part"
  fi
done
exit $status
