#!/usr/bin/env bash
# Here (not on the device): picks from ../shared/device/stage.sh's .devcarry/wheels the few wheels a learning run
# needs on the GPU machine (no Unsloth: the learning configs use the transformers backend), plus py-spy from the
# package registry, so that a device call carries ~7 MB of wheels instead of ~50 and leaves room for a SmolLM2 GGUF
# part (carry them with part00, not with part01 and GSM8K: those three pass the 64 MiB a call may carry).
# scripts/gpu_learn_setup.sh installs them there.
set -euo pipefail
[ -d .devcarry/wheels ] || bash ../shared/device/stage.sh
mkdir -p .devcarry/wheels-lite
for name in trl datasets dill multiprocess pydantic-2 pydantic_core annotated_types typing_inspection \
  typing_extensions gguf; do
  cp .devcarry/wheels/"$name"*.whl .devcarry/wheels-lite/
done
# py-spy (a self-contained binary, ~3 MB): scripts/stall_dump.sh reads a stalled run's stacks with it.
[ -n "$(ls .devcarry/wheels-lite/py_spy-*.whl 2>/dev/null)" ] || python3 -m pip download --quiet --no-deps \
  --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.12 py-spy==0.4.3 -d .devcarry/wheels-lite
du -sh .devcarry/wheels-lite
