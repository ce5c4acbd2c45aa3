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
# DEADLINE_S: the seconds this script may take in all (the device call's limit less what ran before it, e.g.
# DEADLINE_S=$((570 - SECONDS)) in the call's command). Training is then stopped PACK_RESERVE_S (default 40) seconds
# before it with SIGABRT, which makes Python print every thread's stack into the console log (PYTHONFAULTHANDLER; to the
# training process only: `timeout` without --foreground signals the whole process group as well, and that second SIGABRT
# can kill the process in the middle of its dump, as it likely did on 2026-12-01 (third session); the C dumper can also
# crash by itself, as it did once on the H200 while a graph compiled), the final eval is skipped when no time is left
# for it, and the records are packed before the call ends. Records (and the newest complete checkpoint) are packed
# whatever happened to the training: after a failure or the deadline the script exits 1 with them in $OUT (the console
# log alone, as NAME.console.log, when the run directory was never made). Why: on 2026-12-01 two GSM8K runs stalled
# mid-run and a limit outside the script (the call's, a `timeout` around it) stopped it before it packed, so nothing
# came back but what a third call could still find on the machine (docs/learning.md, "GSM8K through the static decode
# loop"). For a stall inside a chunk: scripts/stall_dump.sh watches the run's metrics.jsonl (a line per step) from
# outside and, when no step has been written for STALL_DUMP_S seconds (default 150), appends py-spy's Python and native
# stacks of the training processes to stacks.log (packed with the records); train.stall_report_minutes prints the Python
# stacks from inside, but only while no thread holds the GIL, and in the stall of 2026-12-01 (third session) it printed
# nothing.
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
# A command bounded by the deadline (the reserve kept for packing); unbounded without DEADLINE_S.
bounded() {
  if [ -z "${DEADLINE_S:-}" ]; then "$@"; return; fi
  local left=$((DEADLINE_S - ${PACK_RESERVE_S:-40} - SECONDS))
  if [ "$left" -le 0 ]; then echo "[gpu_learn] $name: no time left before the deadline for: $*"; return 124; fi
  PYTHONFAULTHANDLER=1 timeout --foreground -s ABRT -k 10 "$left" "$@"
}
status=0
bounded python3 -m grpo.cli train "$config" run.name="$name" run.output_dir="$runs" train.max_steps="$target" "$@" \
  $mode >>"$log" 2>&1 &
training=$!
# From outside the process: py-spy's stacks when no step is written (scripts/stall_dump.sh says why). Its messages go
# to this script's output, not to the console log: a log it writes to is no sign of the run's progress.
bash scripts/stall_dump.sh "$training" "$run/metrics.jsonl" "$runs/$name.stacks.log" &
stall_dump=$!
wait "$training" || status=$?
kill "$stall_dump" 2>/dev/null || true
if [ "$status" != 0 ]; then
  tail -n 40 "$log"
  echo "[gpu_learn] $name: training stopped with status $status (124: the deadline, every thread's stack at the end" \
    "of console.log; 137: killed 10 s after it; 134 or 139: it crashed by itself); above: the end of its log" \
    | tee -a "$log"
elif [ "${FINAL_EVAL:-1}" = 1 ]; then
  limit=()
  [ -n "${EVAL_LIMIT:-}" ] && limit=(--limit "$EVAL_LIMIT")
  rm -rf "$run/eval"
  bounded python3 -m grpo.cli eval "$run" "${limit[@]}" --max-new-tokens "${EVAL_TOKENS:-256}" --out "$run/eval" \
    >>"$log" 2>&1 || echo "[gpu_learn] $name: final eval failed or ran out of time (see its log)" | tee -a "$log"
fi
if [ ! -d "$run" ]; then  # never made: keep the log beside, a folder without grpo's marker would block --overwrite
  cp "$log" "$out/$name.console.log"
  [ -f "$runs/$name.stacks.log" ] && cp "$runs/$name.stacks.log" "$out/$name.stacks.log"
  echo "[gpu_learn] $name: no run directory; its console log is $name.console.log"
  exit 1
fi
cp "$log" "$run/console.log"
[ -f "$runs/$name.stacks.log" ] && cp "$runs/$name.stacks.log" "$run/stacks.log"
tar -C "$runs" -czf "$out/$name.records.tar.gz" --exclude="$name/checkpoint-*" --exclude="$name/adapter" \
  --exclude="$name/tensorboard" "$name"
# The newest complete checkpoint (a deadline can cut a save in half; grpo's --resume skips such a one too).
newest=$(python3 -c "import sys; from pathlib import Path; from grpo.train.checkpoints import newest_complete
print(newest_complete(Path(sys.argv[1]), say=lambda _: None) or '')" "$run")
if [ "${PACK_CHECKPOINT:-0}" = 1 ] && [ -n "$newest" ]; then
  excludes=(--exclude="$name/tensorboard")
  for checkpoint in "$run"/checkpoint-*; do
    [ "$checkpoint" = "$newest" ] || excludes+=(--exclude="$name/$(basename "$checkpoint")")
  done
  tar -C "$runs" -c "${excludes[@]}" "$name" | split -b 15m -d - "$out/$name.ckpt.tar.part"
  echo "[gpu_learn] $name: to continue on a fresh machine, copy $name.ckpt.tar.part* into $carried/ and carry it"
fi
echo "[gpu_learn] $name: newest complete checkpoint: $( [ -n "$newest" ] && basename "$newest" || echo none)"
[ "$status" = 0 ] || exit 1
grep -h "accuracy\|problems" "$run/eval/summary.md" 2>/dev/null | sed "s/^/[gpu_learn] $name final eval: /" || true
