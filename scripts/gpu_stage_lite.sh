#!/usr/bin/env bash
# Here (not on the device): picks from ../shared/device/stage.sh's .devcarry/wheels the few wheels a learning run
# needs on the GPU machine (no Unsloth: the learning configs use the transformers backend), so that a device call
# carries ~5 MB of wheels instead of ~50 and leaves room for a SmolLM2 GGUF part. scripts/gpu_learn_setup.sh
# installs them there.
set -euo pipefail
[ -d .devcarry/wheels ] || bash ../shared/device/stage.sh
mkdir -p .devcarry/wheels-lite
for name in trl datasets dill multiprocess pydantic-2 pydantic_core annotated_types typing_inspection \
  typing_extensions gguf; do
  cp .devcarry/wheels/"$name"*.whl .devcarry/wheels-lite/
done
du -sh .devcarry/wheels-lite
