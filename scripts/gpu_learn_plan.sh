#!/usr/bin/env bash
# Several GPU learning runs and base-model evaluations at once, one chunk per device call, from a plan file:
#
#   source scripts/gpu_learn_setup.sh && bash scripts/gpu_learn_plan.sh PLAN TRAIN_MINUTES [final]
#
# Each PLAN line (blank lines and # comments skipped) is one of
#   eval  NAME GPU CONFIG [--set key=value ...]   greedy eval of CONFIG's model.name on its held-out split, with
#                                                 EVAL_TOKENS (default 512) new tokens; only in the first call
#                                                 (skipped once /tmp/NAME exists); leaves $OUT/NAME.tar.gz
#   train NAME GPU CONFIG TARGET_STEPS [key.sub=value ...]
#                                                 scripts/gpu_learn.sh for TRAIN_MINUTES (a fresh run, or a
#                                                 --resume on a warm machine); with `final`, the adapter is also
#                                                 evaluated (EVAL_TOKENS new tokens) and comes back in parts below
#                                                 16 MiB as $OUT/NAME.adapter.tar.part??
# Everything runs at the same time, each line on its GPU (several lines may share one: the runs are small).
# TRAIN_MINUTES is train.time_limit_minutes, counted from when each trainer is built, so a warm start counts too.
set -euo pipefail
plan=${1:?usage: $0 PLAN TRAIN_MINUTES [final]}
minutes=${2:?usage: $0 PLAN TRAIN_MINUTES [final]}
final=${3:-}
out=${OUT:-gpu-out}; mkdir -p "$out"
export EVAL_TOKENS=${EVAL_TOKENS:-512} FINAL_EVAL=0
[ "$final" = final ] && FINAL_EVAL=1
gpus=$(nvidia-smi -L | wc -l)
pids=() trained=()
while read -r kind name gpu config rest; do
  [ -z "${kind:-}" ] || [ "${kind:0:1}" = "#" ] && continue
  [ "$gpu" -lt "$gpus" ] || { echo "[gpu_learn_plan] $name: GPU $gpu absent ($gpus here); skipped"; continue; }
  read -r -a extra <<<"${rest:-}"
  case $kind in
    eval)
      [ -d "/tmp/$name" ] && continue
      ( model=$(python3 -c "import sys; from grpo.config import load_config; print(load_config(sys.argv[1], []).model.name)" "$config")
        if CUDA_VISIBLE_DEVICES=$gpu python3 -m grpo.cli eval "$model" --config "$config" "${extra[@]}" \
            --max-new-tokens "$EVAL_TOKENS" --out "/tmp/$name" > "/tmp/$name.log" 2>&1; then
          cp "/tmp/$name.log" "/tmp/$name/console.log"
          tar -C /tmp -czf "$out/$name.tar.gz" "$name"
          grep -h "accuracy" "/tmp/$name/summary.md" | sed "s/^/[gpu_learn_plan] $name: /" || true
        else  # no /tmp/NAME left behind: a later call runs the eval again
          echo "[gpu_learn_plan] $name: eval failed; end of its log:"; tail -n 20 "/tmp/$name.log"; rm -rf "/tmp/$name"
          exit 1
        fi ) &
      pids+=($!) ;;
    train)
      target=${extra[0]:?train line needs TARGET_STEPS}
      CUDA_VISIBLE_DEVICES=$gpu bash scripts/gpu_learn.sh "$name" "$config" "$target" "${extra[@]:1}" \
        train.time_limit_minutes="$minutes" > "/tmp/$name.out" 2>&1 &
      pids+=($!) trained+=("$name") ;;
    *) echo "[gpu_learn_plan] unknown plan line kind '$kind' (eval or train)" >&2; exit 2 ;;
  esac
done < "$plan"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for name in "${trained[@]}"; do
  cat "/tmp/$name.out"
  if [ "$final" = final ] && [ -d "${GRPO_RUNS:-/tmp/grpo-runs}/$name/adapter" ]; then
    tar -C "${GRPO_RUNS:-/tmp/grpo-runs}/$name" -c adapter | split -b 15m -d - "$out/$name.adapter.tar.part"
  fi
done
exit $status
