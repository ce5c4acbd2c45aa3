#!/usr/bin/env bash
# Issue 15's headline figures in one device call (after `source .devcarry/setup-on-device.sh` or
# scripts/gpu_learn_setup.sh's wheels; needs no model weights: random SmolLM2-135M weights, timing does not depend
# on them):
#   1. the static decode loop's GPU tests (pytest -m gpu tests/gpu/test_static_decode_cuda.py);
#   2. grpo bench train: plain TRL + PEFT, the hf backend with compiled static-cache decoding, with the static
#      decode loop, and with the loop and one forward/backward of all 64 completions (mb64) in the update
#      (64 completions x 256 tokens per step);
#   3. grpo bench kv on the same random model: greedy decode ms per step and tokens/s at batches 1, 8, 64 and 256,
#      256 new tokens, model.generate with the static cache next to the static loop;
#   4. grpo bench summary: perf_summary.json with rollout_tokens_per_s, step_speedup_vs_trl and
#      eval_decode_ms_per_step (batch 64), each with the rows it came from.
# With two GPUs, steps 1 and 3 run on the second GPU alongside step 2 on the first.
# Leaves in $OUT: gpu_tests.log, bench_train.json/.log, bench_kv.json/.log, perf_summary.json (6 files). Every step
# runs even when one before it failed; the exit status is 1 if any failed, and the failures are named at the end (a
# failed GPU test means the loop's figures in perf_summary.json are not to be trusted).
set -uo pipefail
failed=()
out=${OUT:-gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
tokenizer=${BENCH_TOKENIZER:-.devcarry/tokenizer}
model=$(python3 -c "import sys; from pathlib import Path; from grpo.bench.train_step import materialize_shape
print(materialize_shape('smollm2-135m', Path('/tmp/grpo-bench-models'), sys.argv[1]))" "$tokenizer")
# With two GPUs the tests and the eval-decoding bench run on the second one while the first runs the step bench
# (each process owns one GPU, so neither times the other's work); with one GPU they run one after the other.
second_gpu=$([ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ] && echo 1 || echo "")
tests_and_kv() {
  export CUDA_VISIBLE_DEVICES=${second_gpu:-${CUDA_VISIBLE_DEVICES:-0}}
  local status=0
  python3 -m pytest -q -m gpu tests/gpu/test_static_decode_cuda.py > "$out/gpu_tests.log" 2>&1 || status=1
  python3 -m grpo.cli bench kv --model "$model" --dtype bfloat16 --batches 1 8 64 256 --lengths 256 --cached-only \
    --cache-implementation static --static-loop --out "$out/bench_kv.json" > "$out/bench_kv.log" 2>&1 || status=$((status + 2))
  return $status
}
note_tests_and_kv() {  # $1: tests_and_kv's status
  [ $(($1 & 1)) -eq 0 ] || failed+=("gpu tests")
  [ $(($1 & 2)) -eq 0 ] || failed+=("bench kv")
}
if [ -n "$second_gpu" ]; then tests_and_kv & side_pid=$!; fi
CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} python3 -m grpo.cli bench train smollm2-135m:trl-baseline \
  smollm2-135m:hf:static smollm2-135m:hf:loop smollm2-135m:hf:loop:mb64 --tokenizer "$tokenizer" \
  --model-root /tmp/grpo-bench-models --out "$out/bench_train.json" > "$out/bench_train.log" 2>&1 \
  || failed+=("bench train")
tail -n 7 "$out/bench_train.log"
if [ -n "$second_gpu" ]; then wait "$side_pid"; note_tests_and_kv $?; else tests_and_kv; note_tests_and_kv $?; fi
tail -n 3 "$out/gpu_tests.log"
tail -n 7 "$out/bench_kv.log"
python3 -m grpo.cli bench summary --train "$out/bench_train.json" --kv "$out/bench_kv.json" \
  --out "$out/perf_summary.json" || failed+=("bench summary")
if [ ${#failed[@]} -gt 0 ]; then echo "[gpu_perf] FAILED: ${failed[*]}"; exit 1; fi
