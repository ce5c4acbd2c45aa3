#!/usr/bin/env bash
# Watches a run from outside its process: while PID lives, whenever WATCHED (a file only the run's progress writes,
# e.g. its metrics.jsonl; missing counts as unchanged) has not changed for STALL_DUMP_S seconds (default 150; a
# change before this script started counts as at its start), appends py-spy's stacks (Python and native, every
# thread) of each Python process under PID to OUT; at most 3 dumps per stall, STALL_DUMP_S apart. It looks every
# STALL_POLL_S seconds (default 10).
#
#   bash scripts/stall_dump.sh PID WATCHED OUT
#
# Why from outside: on 2026-12-01 a GSM8K run through the static decode loop stopped making progress during step 4
# and train.stall_report_minutes (a thread inside the process) printed nothing in 7 minutes: it needs the GIL, so
# something likely held the GIL all along (docs/learning.md). py-spy reads the process's memory and needs neither
# the GIL nor the process's help; it shows which thread holds the GIL and, with --native, the C++ frames it is
# stuck in. py-spy pauses the process while it reads; it is stopped with SIGINT (on which it lets the process go)
# if it takes over 60 s, and the process is sent SIGCONT after every dump in case it was left paused.
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
alive() {  # a zombie (ended, not yet reaped by its parent) counts as ended
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
started=$(date +%s) stalled_since="" dumps=0
while alive "$pid"; do
  sleep "${STALL_POLL_S:-10}"
  changed=$(stat -c %Y "$watched" 2>/dev/null || echo "$started")
  [ "$changed" -ge "$started" ] || changed=$started
  idle=$(($(date +%s) - changed))
  if [ "$changed" != "$stalled_since" ]; then dumps=0; fi
  if [ "$idle" -ge $((limit * (dumps + 1))) ] && [ "$dumps" -lt 3 ]; then
    stalled_since=$changed dumps=$((dumps + 1))
    {
      echo "=== $(date -u +%FT%TZ): no change to $watched for ${idle} s (dump $dumps of this stall)"
      for process in $(descendants "$pid"); do
        grep -q python "/proc/$process/comm" 2>/dev/null || continue
        timeout -s INT -k 5 60 "$spy" dump --native --pid "$process" 2>&1 \
          || echo "(py-spy failed on $process: status $?)"
        kill -CONT "$process" 2>/dev/null
      done
    } >>"$out"
    echo "[stall_dump] no progress for ${idle} s: stacks appended to $out" >&2
  fi
done
