#!/usr/bin/env bash
# The GPU benchmark of docs/benchmarks.md, on the device machine (after `source .devcarry/setup-on-device.sh`).
# Usage: bash scripts/gpu_bench_train.sh hf|unsloth|compiled     (one group per call: each case is its own process)
set -euo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
tokenizer=${BENCH_TOKENIZER:-.devcarry/tokenizer}
case ${1:?hf or unsloth} in
  hf) cases="smollm2-135m:trl-baseline smollm2-135m:hf:dynamic smollm2-135m:hf:static qwen2.5-0.5b:trl-baseline
             qwen2.5-0.5b:hf:static qwen2.5-1.5b:hf:static:4bit" ;;
  unsloth) cases="smollm2-135m:unsloth:dynamic qwen2.5-1.5b:unsloth:dynamic:4bit qwen2.5-0.5b:unsloth:dynamic" ;;
  compiled) cases="smollm2-135m:hf:static qwen2.5-0.5b:hf:static qwen2.5-1.5b:hf:static:4bit" ;;
esac
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device_$1.txt"
python3 -m grpo.cli bench train $cases --tokenizer "$tokenizer" --out "$out/bench_$1.json" 2>&1 | tee "$out/bench_$1.log"
