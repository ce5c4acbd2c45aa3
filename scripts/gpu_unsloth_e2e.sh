#!/usr/bin/env bash
# On the device machine (after `source .devcarry/setup-on-device.sh` with the SmolLM2 GGUF assembled):
# a short GRPO run with backend unsloth on the real SmolLM2-135M-Instruct weights, then `grpo eval` of its run
# directory. Copies the run's records and the eval into ${OUT:-gpu-out}.
set -euo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export GRPO_CACHE_DIR=${GRPO_CACHE_DIR:-/tmp/grpocache}
export GRPO_SMOLLM2_SOURCE=${GRPO_SMOLLM2_SOURCE:-/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
runs=/tmp/runs
python3 -m grpo.cli train configs/gpu/smollm2-135m.yaml model.backend=unsloth train.cache_implementation=null \
  data.path=.devcarry/gsm8k train.max_steps=${STEPS:-8} train.save_steps=4 eval.before_after=false \
  run.output_dir=$runs --overwrite 2>&1 | tee "$out/train.log"
run=$runs/smollm2-135m-gsm8k
cp "$run/environment.json" "$run/grpo_args.json" "$run/metrics.jsonl" "$out/"
python3 -m grpo.cli eval "$run" --limit ${EVAL_LIMIT:-256} --max-new-tokens 256 --out "$out/eval" 2>&1 | tail -20
