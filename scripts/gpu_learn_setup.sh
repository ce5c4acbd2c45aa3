#!/usr/bin/env bash
# Source on the device machine before scripts/gpu_learn.sh: installs the few wheels a learning run needs
# (.devcarry/wheels-lite, made here by scripts/gpu_stage_lite.sh: trl, datasets, pydantic, gguf and their missing
# dependencies, py-spy; no Unsloth, so the call carries ~7 MB instead of ~50), assembles the carried SmolLM2 GGUF
# parts, and converts the model once, before several runs start at the same time and would race to convert it.
# Two calls back to back: the first carries the wheels with part00 (and SHA256SUMS), the second part01 (with
# SHA256SUMS and GSM8K); both source this script, and the second converts the model.
source .devcarry/setup-on-device.sh
if [ -d .devcarry/wheels-lite ] && [ ! -f /tmp/site/.lite ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .devcarry/wheels-lite/*.whl && touch /tmp/site/.lite
fi
export PYTHONPATH=$PWD:/tmp/site GRPO_CACHE_DIR=/tmp/grpocache
export GRPO_SMOLLM2_SOURCE=/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$GRPO_SMOLLM2_SOURCE" ]; then
  python3 -c "from grpo.models.embedded import ensure_embedded; print('model ready:', ensure_embedded('smollm2-135m-instruct'))"
else  # the first of the two calls: the lite wheels (with part00) are installed, the model waits for part01
  echo "gpu_learn_setup: wheels installed; no GGUF yet at $GRPO_SMOLLM2_SOURCE (carry part01 in the next call)"
fi
