#!/usr/bin/env bash
# Issue 15's headline figures in one device call (after `source .devcarry/setup-on-device.sh` or
# scripts/gpu_learn_setup.sh's wheels; needs no model weights: random SmolLM2-135M weights, timing does not depend
# on them):
#   1. the static decode loop's GPU tests (pytest -m gpu: tests/gpu/test_static_decode_cuda.py,
#      test_grouped_attention_cuda.py, test_split_kv_attention_cuda.py);
#   2. grpo bench train, 64 completions x 256 tokens per step: plain TRL + PEFT, and the hf backend with the static
#      decode loop and one forward/backward of all 64 completions (mb64) in the update: as it is, with
#      transformers' repeated key/value heads instead of the grouped-query attention read in place (repeatkv), and
#      decoding through a merged copy of the LoRA policy (merged), and that without gradient checkpointing
#      (merged:nogc, the fastest step measured: docs/benchmarks.md) or with the off-policy correction
#      (merged:offpolicy: recorded log-probabilities, one forward more); and transformers' continuous batching
#      instead of the loop (continuous, through TRL's use_transformers_continuous_batching). PERF_CASES replaces the
#      case list;
#   3. grpo bench kv on the same random model: greedy decode ms per step and tokens/s at batches 1, 8, 64 and 256,
#      256 new tokens, model.generate with the static cache next to the static loop, the loop with and without the
#      grouped-query attention; then batch 64 again with the loop's decode attention through SDPA's kernels instead
#      of the split-KV kernel (--no-split-kv, bench_kv_sdpa.json);
#   4. grpo bench summary: perf_summary.json with rollout_tokens_per_s, step_speedup_vs_trl and
#      eval_decode_ms_per_step (batch 64), each with the rows it came from.
# PERF_PARTS picks some of them (default "tests kv train summary"; summary reads bench_train.json and
# bench_kv.json from $OUT, or from PERF_KV / PERF_TRAIN when a part ran in an earlier call).
# One after the other on one GPU, or (PERF_PARALLEL=1) steps 1 and 3 on a second GPU alongside step 2.
# Leaves in $OUT: gpu_tests.log, bench_train.json/.log, bench_kv.json/.log, bench_kv_sdpa.json, perf_summary.json
# (7 files). Every step
# runs even when one before it failed; the exit status is 1 if any failed, and the failures are named at the end (a
# failed GPU test means the loop's figures in perf_summary.json are not to be trusted).
set -uo pipefail
failed=()
parts=" ${PERF_PARTS:-tests kv train summary} "
wants() { [[ $parts == *" $1 "* ]]; }
out=${OUT:-gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
tokenizer=${BENCH_TOKENIZER:-.devcarry/tokenizer}
model=$(python3 -c "import sys; from pathlib import Path; from grpo.bench.train_step import materialize_shape
print(materialize_shape('smollm2-135m', Path('/tmp/grpo-bench-models'), sys.argv[1]))" "$tokenizer")
# The GPUs this script may use: CUDA_VISIBLE_DEVICES when set, else every GPU nvidia-smi lists. By default
# everything runs one after the other on the first, each timed bench alone on the machine. PERF_PARALLEL=1 with a
# second GPU runs the tests and bench kv on it while bench train runs on the first: faster, but the two processes
# share the host, and bench kv's figures then carry that (2026-11-30: the loop at batch 64 read 3.16 ms a step
# beside bench train, against 2.74 ms a token, prefill included, in a run alone; docs/benchmarks.md).
IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, -)}"
first_gpu=${gpus[0]:-0}
second_gpu=""
[ "${PERF_PARALLEL:-0}" = 1 ] && [ ${#gpus[@]} -ge 2 ] && second_gpu=${gpus[1]}
tests_and_kv() {  # on $1; status: 1 the tests failed, 2 bench kv failed, 3 both
  local status=0
  if wants tests; then
    CUDA_VISIBLE_DEVICES=$1 python3 -m pytest -q -m gpu tests/gpu/test_static_decode_cuda.py \
      tests/gpu/test_grouped_attention_cuda.py tests/gpu/test_split_kv_attention_cuda.py > "$out/gpu_tests.log" \
      2>&1 || status=1
  fi
  if wants kv; then
    CUDA_VISIBLE_DEVICES=$1 python3 -m grpo.cli bench kv --model "$model" --dtype bfloat16 --batches 1 8 64 256 \
      --lengths 256 --cached-only --cache-implementation static --static-loop --loop-repeated-kv \
      --out "$out/bench_kv.json" > "$out/bench_kv.log" 2>&1 || status=$(( status | 2 ))
    CUDA_VISIBLE_DEVICES=$1 python3 -m grpo.cli bench kv --model "$model" --dtype bfloat16 --batches 64 \
      --lengths 256 --cached-only --cache-implementation static --static-loop --no-split-kv \
      --out "$out/bench_kv_sdpa.json" >> "$out/bench_kv.log" 2>&1 || status=$(( status | 2 ))
  fi
  return $status
}
note_tests_and_kv() {  # $1: tests_and_kv's status (above 3: the job itself was killed or broke)
  if [ "$1" -gt 3 ]; then failed+=("tests and bench kv (status $1)"); return; fi
  [ $(($1 & 1)) -eq 0 ] || failed+=("gpu tests")
  [ $(($1 & 2)) -eq 0 ] || failed+=("bench kv")
}
cases=${PERF_CASES:-smollm2-135m:trl-baseline smollm2-135m:hf:loop:mb64 smollm2-135m:hf:loop:mb64:repeatkv
  smollm2-135m:hf:loop:mb64:merged smollm2-135m:hf:loop:mb64:merged:nogc smollm2-135m:hf:loop:mb64:merged:offpolicy
  smollm2-135m:hf:continuous:mb64}
bench_train() {
  wants train || return 0
  # shellcheck disable=SC2086  # one word per case
  CUDA_VISIBLE_DEVICES=$first_gpu python3 -m grpo.cli bench train $cases --tokenizer "$tokenizer" \
    --model-root /tmp/grpo-bench-models --out "$out/bench_train.json" > "$out/bench_train.log" 2>&1 \
    || failed+=("bench train")
  tail -n 7 "$out/bench_train.log"
}
if [ -n "$second_gpu" ]; then
  tests_and_kv "$second_gpu" & side_pid=$!
  trap 'kill "$side_pid" 2>/dev/null' EXIT
  bench_train
  wait "$side_pid"; note_tests_and_kv $?
else
  tests_and_kv "$first_gpu"; note_tests_and_kv $?
  bench_train
fi
! wants tests || tail -n 3 "$out/gpu_tests.log"
! wants kv || tail -n 7 "$out/bench_kv.log"
if wants summary; then
  python3 -m grpo.cli bench summary --train "${PERF_TRAIN:-$out/bench_train.json}" --kv "${PERF_KV:-$out/bench_kv.json}" \
    --out "$out/perf_summary.json" || failed+=("bench summary")
fi
if [ ${#failed[@]} -gt 0 ]; then echo "[gpu_perf] FAILED: ${failed[*]}"; exit 1; fi
