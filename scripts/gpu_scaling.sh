#!/usr/bin/env bash
# GPU scaling of one GRPO config: the same run on 1 GPU and on N GPUs through `accelerate launch` (DDP, and
# DeepSpeed ZeRO-2 if asked), summarised as JSON by grpo.bench.scaling: median step time after warm-up, rollout
# tokens/s (completion tokens generated per second of step, all GPUs), peak memory per GPU as nvidia-smi saw it,
# and scaling efficiency (N-GPU rate / (N x 1-GPU rate)).
#
#   bash scripts/gpu_scaling.sh [N] [key.sub=value ...]
#
# N: GPUs of the multi-GPU runs (default: every GPU nvidia-smi lists); N=1 measures one GPU only. Extra key=value
# overrides go to every run. Environment:
#   CONFIG     the run config (default configs/gpu/smollm2-135m.yaml)
#   BATCH      strong (default): the same global batch and completions per step on every GPU count
#              (per_device_train_batch_size divided by N); weak: the same per-GPU batch, N times the work per step
#   LAUNCHERS  configs/accelerate/ files of the N-GPU runs (default "ddp"; "ddp zero2" adds ZeRO-2, which needs
#              deepspeed installed)
#   SHAPE      an architecture of grpo.bench.train_step (smollm2-135m, qwen2.5-0.5b, ...) with random weights in
#              place of the config's model, its tokenizer from TOKENIZER (a folder); completions then run to the
#              full max_completion_length (a random model never says EOS), so every step does the same work and
#              truncated completions are kept in the loss (masking them all would leave nothing to average)
#   NAME       prefix of the run names and of $OUT/NAME.tar.gz (default scaling)
#   STEPS per run (default 8), WARMUP steps left out (default 1: the first step compiles the static-cache decoding),
#   GSM8K_DIR (default .devcarry/gsm8k), OUT (default gpu-out), GRPO_RUNS (default /tmp/grpo-scaling),
#   DEADLINE_S: start no further run after this many seconds of the script (default: none)
#   SKIP_ONE_GPU=1: leave the one-GPU run out (an earlier call measured it; `python -m grpo.bench.scaling` over the
#              run folders of both calls then gives the speedups, across two calls and possibly two machines)
# Writes $OUT/NAME.tar.gz (after each run, so a call cut short still returns the runs it finished): per run its
# console log, metrics.jsonl, grpo_args.json, environment.json and gpu_memory.csv, and NAME.json, the summary.
# Dynamic sampling is switched off (single-process only, and extra generation rounds would make steps unequal), as
# are the evals and intermediate checkpoints, so a step is a GRPO step and nothing else.
# Needs the SmolLM2 GGUF at $GRPO_SMOLLM2_SOURCE (as scripts/gpu_learn.sh does) unless SHAPE is set.
set -euo pipefail
n=${1:-$(nvidia-smi -L | wc -l)}
[ $# -gt 0 ] && shift
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N] [key.sub=value ...]  (N: a number of GPUs)" >&2; exit 2; }
[ "${SKIP_ONE_GPU:-0}" != 1 ] || [ "$n" -gt 1 ] || { echo "SKIP_ONE_GPU=1 with N=1 leaves no run to make" >&2; exit 2; }
config=${CONFIG:-configs/gpu/smollm2-135m.yaml}
name=${NAME:-scaling}
out=${OUT:-gpu-out}; runs=${GRPO_RUNS:-/tmp/grpo-scaling}
mkdir -p "$out" "$runs/$name"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export GRPO_CACHE_DIR=${GRPO_CACHE_DIR:-/tmp/grpocache}
export GRPO_SMOLLM2_SOURCE=${GRPO_SMOLLM2_SOURCE:-/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
overrides=(train.save_steps=100000 train.dynamic_sampling.enabled=false eval.every_n_steps=null
  eval.before_after=false data.path="${GSM8K_DIR:-.devcarry/gsm8k}" "train.max_steps=${STEPS:-8}")
if [ -n "${SHAPE:-}" ]; then
  model=$(python3 -c "import sys; from pathlib import Path; from grpo.bench.train_step import materialize_shape
print(materialize_shape(sys.argv[1], Path('/tmp/shapes'), sys.argv[2]))" "$SHAPE" "${TOKENIZER:?SHAPE needs TOKENIZER}")
  overrides+=(model.name="$model" model.backend=hf train.mask_truncated_completions=false)
fi
# the one-GPU run's per-device batch, as grpo reads it (the config file with the extra overrides applied)
per_device=$(python3 -c "import sys; from grpo.config import load_config
print(load_config(sys.argv[1], sys.argv[2:]).train.per_device_train_batch_size)" "$config" "$@")

run_one() {  # run_one GPUS LAUNCHER: one measured run, its files into $runs/$name/
  local gpus=$1 launcher=$2 batch=$per_device
  shift 2
  if [ "${BATCH:-strong}" = strong ]; then
    [ $((per_device % gpus)) -eq 0 ] || { echo "[gpu_scaling] per_device_train_batch_size $per_device is not divisible by $gpus"; return 1; }
    batch=$((per_device / gpus))
  fi
  local run=$name-${gpus}gpu-$launcher
  local log=$runs/$run.console.log memory=$runs/$run.gpu_memory.csv
  echo "[gpu_scaling] $run: ${STEPS:-8} steps on $gpus GPU(s), $launcher, per-device batch $batch (${BATCH:-strong} scaling)"
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 500 >"$memory" &
  local sampler=$!
  local status=0
  python3 -m accelerate.commands.launch --config_file "configs/accelerate/$launcher.yaml" --num_processes "$gpus" \
    --main_process_port $((29500 + gpus)) -m grpo train "$config" run.name="$run" run.output_dir="$runs" \
    "${overrides[@]}" train.per_device_train_batch_size="$batch" "$@" --overwrite >"$log" 2>&1 || status=$?
  kill "$sampler" 2>/dev/null || true
  if [ $status -ne 0 ]; then echo "[gpu_scaling] $run failed; end of its log:"; tail -n 30 "$log"; return 1; fi
  mkdir -p "$runs/$name/$run"
  cp "$log" "$memory" "$runs/$run/metrics.jsonl" "$runs/$run/grpo_args.json" "$runs/$run/environment.json" \
    "$runs/$name/$run/"
  mv "$runs/$name/$run/$run.gpu_memory.csv" "$runs/$name/$run/gpu_memory.csv"
  python3 -m grpo.bench.scaling --warmup "${WARMUP:-1}" --out "$runs/$name/$name.json" "$runs/$name"/"$name"-*gpu-* \
    >/dev/null
  tar -C "$runs" -czf "$out/$name.tar.gz" "$name"
}

plan=()
[ "${SKIP_ONE_GPU:-0}" = 1 ] || plan+=("1 ddp")
if [ "$n" -gt 1 ]; then for launcher in ${LAUNCHERS:-ddp}; do plan+=("$n $launcher"); done; fi
for entry in "${plan[@]}"; do
  if [ -n "${DEADLINE_S:-}" ] && [ "$SECONDS" -ge "$DEADLINE_S" ]; then
    echo "[gpu_scaling] $SECONDS s gone (DEADLINE_S=$DEADLINE_S): not starting $entry"; continue
  fi
  run_one $entry "$@" || true
done
[ -f "$runs/$name/$name.json" ] && cat "$runs/$name/$name.json"
