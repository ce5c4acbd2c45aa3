#!/usr/bin/env bash
# Watches a run from outside its process: while PID lives, whenever WATCHED (a log the run writes to as it makes
# progress) has not changed for STALL_DUMP_S seconds (default 150), appends py-spy's stacks (Python and native, every
# thread) of each Python process under PID to OUT; at most 3 dumps per stall, STALL_DUMP_S apart.
#
#   bash scripts/stall_dump.sh PID WATCHED OUT
#
# Why from outside: on 2026-12-01 a GSM8K run through the static decode loop stopped making progress during step 4
# and train.stall_report_minutes (a thread inside the process) printed nothing in 7 minutes: it needs the GIL, so
# something held the GIL all along; then SIGABRT's fault-handler dump stopped after its first line
# (docs/learning.md). py-spy reads the process's memory and needs neither the GIL nor the process's help; it shows
# which thread holds the GIL and, with --native, the C++ frames it is stuck in.
# py-spy: $PYSPY, else the one on PATH, else /tmp/site/bin/py-spy (scripts/gpu_stage_lite.sh stages its wheel with
# the lite wheels); without it the script says so once and exits 0.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 PID WATCHED OUT" >&2; exit 2; }
pid=$1 watched=$2 out=$3 limit=${STALL_DUMP_S:-150}
spy=${PYSPY:-$(command -v py-spy || echo /tmp/site/bin/py-spy)}
if [ ! -x "$spy" ]; then
  echo "[stall_dump] no py-spy at $spy: a stall will not be dumped" >&2
  exit 0
fi
descendants() {  # $1 and every process under it
  echo "$1"
  local child
  for child in $(pgrep -P "$1"); do descendants "$child"; done
}
started=$(date +%s) stalled_since="" dumps=0
while kill -0 "$pid" 2>/dev/null; do
  sleep "${STALL_POLL_S:-10}"
  changed=$(stat -c %Y "$watched" 2>/dev/null || echo "$started")
  idle=$(($(date +%s) - changed))
  if [ "$changed" != "$stalled_since" ]; then dumps=0; fi
  if [ "$idle" -ge $((limit * (dumps + 1))) ] && [ "$dumps" -lt 3 ]; then
    stalled_since=$changed dumps=$((dumps + 1))
    {
      echo "=== $(date -u +%FT%TZ): no change to $watched for ${idle} s (dump $dumps of this stall)"
      for process in $(descendants "$pid"); do
        grep -q python "/proc/$process/comm" 2>/dev/null || continue
        timeout 60 "$spy" dump --native --pid "$process" 2>&1 || echo "(py-spy failed on $process: status $?)"
      done
    } >>"$out"
    echo "[stall_dump] no progress for ${idle} s: stacks appended to $out" >&2
  fi
done
