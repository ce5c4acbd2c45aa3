#!/usr/bin/env bash
# One chunk of a GPU learning run per device call; resumable within a warm machine and across machines.
#
#   bash scripts/gpu_learn.sh NAME CONFIG TARGET_STEPS [key.sub=value ...]
#
# Trains run NAME from CONFIG up to TARGET_STEPS (a fresh run, or a --resume of the same run; pass
# train.time_limit_minutes=M to stop earlier with a checkpoint), evaluates the final adapter on the held-out split
# (greedy; EVAL_LIMIT problems, default all; EVAL_TOKENS new tokens, default 256; FINAL_EVAL=0 skips it, e.g. in
# a chunk that is not the last), and leaves in $OUT:
#   NAME.records.tar.gz   config, environment, metrics.jsonl, train.log, the evals' summaries and samples
#   NAME.ckpt.tar.part??  with PACK_CHECKPOINT=1: the run directory with its newest checkpoint and adapter, in
#                         parts below 16 MiB, to carry into a fresh machine's .devcarry/resume/
# The run directory lives in $GRPO_RUNS (default /tmp/grpo-runs): a later call on the same warm machine resumes
# from there; on a fresh machine the carried parts in .devcarry/resume/ are unpacked first. Several runs can share
# one GPU: start this script once per run, in the background, and `wait`.
# Needs trl, datasets and pydantic (the staged wheels) and the SmolLM2 GGUF at $GRPO_SMOLLM2_SOURCE (see
# ../shared/device/README.md); GSM8K configs take data.path=.devcarry/gsm8k.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 NAME CONFIG TARGET_STEPS [key.sub=value ...]" >&2; exit 2; }
name=$1 config=$2 target=$3; shift 3
out=${OUT:-gpu-out}; runs=${GRPO_RUNS:-/tmp/grpo-runs}; carried=.devcarry/resume
mkdir -p "$out" "$runs"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export GRPO_CACHE_DIR=${GRPO_CACHE_DIR:-/tmp/grpocache}
export GRPO_SMOLLM2_SOURCE=${GRPO_SMOLLM2_SOURCE:-/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
run=$runs/$name
log=$runs/$name.console.log
if [ ! -d "$run" ] && ls "$carried/$name".ckpt.tar.part* >/dev/null 2>&1; then
  echo "[gpu_learn] $name: unpacking the carried run"
  cat "$carried/$name".ckpt.tar.part* | tar -x -C "$runs"
fi
mode=--overwrite
if ls -d "$run"/checkpoint-* >/dev/null 2>&1; then mode=--resume; fi
echo "[gpu_learn] $name: $mode up to step $target" | tee -a "$log"
python3 -m grpo.cli train "$config" run.name="$name" run.output_dir="$runs" train.max_steps="$target" "$@" $mode \
  >>"$log" 2>&1 || { echo "[gpu_learn] $name: training failed; end of its log:"; tail -n 40 "$log"; exit 1; }
if [ "${FINAL_EVAL:-1}" = 1 ]; then
  limit=()
  [ -n "${EVAL_LIMIT:-}" ] && limit=(--limit "$EVAL_LIMIT")
  rm -rf "$run/eval"
  python3 -m grpo.cli eval "$run" "${limit[@]}" --max-new-tokens "${EVAL_TOKENS:-256}" --out "$run/eval" \
    >>"$log" 2>&1 || echo "[gpu_learn] $name: final eval failed (see its log)"
fi
cp "$log" "$run/console.log"
tar -C "$runs" -czf "$out/$name.records.tar.gz" --exclude="$name/checkpoint-*" --exclude="$name/adapter" \
  --exclude="$name/tensorboard" "$name"
if [ "${PACK_CHECKPOINT:-0}" = 1 ]; then
  newest=$(ls -d "$run"/checkpoint-* | sort -t- -k2 -n | tail -n 1)
  excludes=(--exclude="$name/tensorboard")
  for checkpoint in "$run"/checkpoint-*; do
    [ "$checkpoint" = "$newest" ] || excludes+=(--exclude="$name/$(basename "$checkpoint")")
  done
  tar -C "$runs" -c "${excludes[@]}" "$name" | split -b 15m -d - "$out/$name.ckpt.tar.part"
  echo "[gpu_learn] $name: to continue on a fresh machine, copy $name.ckpt.tar.part* into $carried/ and carry it"
fi
echo "[gpu_learn] $name: done at $(basename "$(ls -d "$run"/checkpoint-* | sort -t- -k2 -n | tail -n 1)")"
grep -h "accuracy\|problems" "$run/eval/summary.md" 2>/dev/null | sed "s/^/[gpu_learn] $name final eval: /" || true
