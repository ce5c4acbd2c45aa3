#!/usr/bin/env bash
# The GPU measurements of docs/evaluation.md, in one call on the device machine (after
# `source .devcarry/setup-on-device.sh` has installed the wheels and assembled the SmolLM2 GGUF).
# Writes its tables and the GSM8K eval into ${OUT:-gpu-out}.
set -euo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export GRPO_CACHE_DIR=${GRPO_CACHE_DIR:-/tmp/grpocache}
export GRPO_SMOLLM2_SOURCE=${GRPO_SMOLLM2_SOURCE:-/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
gsm8k=${GSM8K_DIR:-.devcarry/gsm8k}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -m grpo.cli bench kv --dtype bfloat16 --batches 1 64 --lengths 128 512 2>&1 | tee "$out/kv_dynamic.log"
python3 -m grpo.cli bench kv --dtype bfloat16 --batches 1 64 --lengths 128 512 --cached-only \
  --cache-implementation static 2>&1 | tee "$out/kv_static.log"
python3 -m grpo.cli eval smollm2-135m-instruct --set data.source=gsm8k --set "data.path=$gsm8k" \
  --set data.max_prompt_tokens=1024 --max-new-tokens 512 --out "$out/gsm8k" 2>&1 | tee "$out/gsm8k_eval.log"
