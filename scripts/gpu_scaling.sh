#!/usr/bin/env bash
# GPU scaling of the SmolLM2 config: the same per-GPU work on 1 GPU and on N GPUs, both through
# `accelerate launch --config_file configs/accelerate/ddp.yaml`, summarised as JSON by grpo.bench.scaling: median step
# time after warm-up, rollout tokens/s (completion tokens generated per second of step, all GPUs) and scaling
# efficiency (N-GPU rate / (N x 1-GPU rate)).
#
#   bash scripts/gpu_scaling.sh [N] [key.sub=value ...]
#
# N: GPUs of the second run (default: every GPU nvidia-smi lists); N=1 measures one GPU only, through the same
# launcher path. Extra key=value overrides go to both runs. Environment: CONFIG (default
# configs/gpu/smollm2-135m.yaml), STEPS per run (default 8), WARMUP steps left out (default 1: the first step compiles
# the static-cache decoding), GSM8K_DIR (default .devcarry/gsm8k), OUT (default gpu-out), GRPO_RUNS (default
# /tmp/grpo-scaling). Writes $OUT/gpu_scaling.json and, per run, its console log, metrics.jsonl and grpo_args.json.
# Dynamic sampling is switched off (single-process only, and extra generation rounds would make steps unequal),
# as are the periodic evals and intermediate checkpoints, so a step is a GRPO step and nothing else.
# Needs the SmolLM2 GGUF at $GRPO_SMOLLM2_SOURCE, as scripts/gpu_learn.sh does.
set -euo pipefail
n=${1:-$(nvidia-smi -L | wc -l)}
[ $# -gt 0 ] && shift
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N] [key.sub=value ...]  (N: a number of GPUs)" >&2; exit 2; }
config=${CONFIG:-configs/gpu/smollm2-135m.yaml}
out=${OUT:-gpu-out}; runs=${GRPO_RUNS:-/tmp/grpo-scaling}
mkdir -p "$out" "$runs"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export GRPO_CACHE_DIR=${GRPO_CACHE_DIR:-/tmp/grpocache}
export GRPO_SMOLLM2_SOURCE=${GRPO_SMOLLM2_SOURCE:-/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
counts=(1)
[ "$n" -gt 1 ] && counts+=("$n")
run_dirs=()
for gpus in "${counts[@]}"; do
  name=scaling-${gpus}gpu
  log=$runs/$name.console.log
  echo "[gpu_scaling] $name: ${STEPS:-8} steps on $gpus GPU(s)"
  python3 -m accelerate.commands.launch --config_file configs/accelerate/ddp.yaml --num_processes "$gpus" \
    --main_process_port $((29500 + gpus)) -m grpo train "$config" run.name="$name" run.output_dir="$runs" \
    train.max_steps="${STEPS:-8}" train.save_steps=100000 train.dynamic_sampling.enabled=false \
    eval.every_n_steps=null eval.before_after=false data.path="${GSM8K_DIR:-.devcarry/gsm8k}" "$@" --overwrite \
    >"$log" 2>&1 || { echo "[gpu_scaling] $name failed; end of its log:"; tail -n 40 "$log"; exit 1; }
  mkdir -p "$out/$name"
  cp "$log" "$runs/$name/metrics.jsonl" "$runs/$name/grpo_args.json" "$runs/$name/environment.json" "$out/$name/"
  run_dirs+=("$runs/$name")
done
python3 -m grpo.bench.scaling --warmup "${WARMUP:-1}" --out "$out/gpu_scaling.json" "${run_dirs[@]}"
