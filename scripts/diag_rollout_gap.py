"""Why the static loop decodes slower inside the GRPO step than in `grpo bench kv` (2026-11-30, H200: 1.23 s for
64 x 256 tokens inside the step, 0.50 s in bench kv at batch 64), without the trainer: the same random
SmolLM2-shaped model and rollout hook, one setting changed at a time.

The last two variants decode the LoRA policy through grpo.train.merged_copy's merged copy (2026-11-30: 1.45 s a
rollout inside the bench's step against 1.28 s through the adapter layers), and print the copy's refresh time.
(The gap inside the step was explained on 2026-12-01 by scripts/diag_rollout_in_trainer.py: TRL's patched forward
made the copy run the policy; grpo.train.merged_copy now drops it.)

Usage (device, after the lite wheels): python3 scripts/diag_rollout_gap.py TOKENIZER_DIR
Prints one line per variant: seconds per rollout (median of 3 after a warm-up), host seconds spent enqueuing the
decode steps, and dynamo's recompile / graph-break counters.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from grpo.bench.decode import timed
from grpo.bench.train_step import Case, _dataset, materialize_shape
from grpo.config import ModelSection
from grpo.models.loading import load
from grpo.train.rollout import StaticLoopRollouts


def timed_rollout(rollouts, inputs, config, repeats=3):
    """Median seconds per rollout after a warm-up (compile, record), and the host seconds spent inside the decode
    steps' calls (enqueuing; the GPU runs behind)."""
    rollouts(**inputs, generation_config=config)
    decoder, host = rollouts.decoder, []
    if decoder is not None:
        original = decoder.step

        def step():
            started = time.perf_counter()
            original()
            host.append(time.perf_counter() - started)

        decoder.step = step
    times, hosts = [], []
    for _ in range(repeats):
        host.clear()
        torch.cuda.synchronize()
        started = time.perf_counter()
        rollouts(**inputs, generation_config=config)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        hosts.append(sum(host))
    return statistics.median(times), statistics.median(hosts)


def main(tokenizer_dir: str) -> None:
    root = Path(tempfile.mkdtemp())
    folder = materialize_shape("smollm2-135m", root, tokenizer_dir)
    case = Case("smollm2-135m", "hf", "loop")
    prompts = [row["prompt"] for row in _dataset(case)][:8]
    loaded = load(ModelSection(name=str(folder), backend="hf", dtype="bfloat16", max_seq_length=512))
    model, tokenizer = loaded.model.to("cuda"), loaded.tokenizer
    tokenizer.padding_side = "left"
    encoded = tokenizer.apply_chat_template([p for p in prompts for _ in range(8)], add_generation_prompt=True,
                                            padding=True, return_tensors="pt", return_dict=True).to("cuda")
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    cache = inputs["input_ids"].shape[1] + 256
    sampled = GenerationConfig(max_new_tokens=256, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                               pad_token_id=tokenizer.pad_token_id)
    greedy = GenerationConfig(max_new_tokens=256, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to("cuda")
    print(f"prompt width {inputs['input_ids'].shape}, cache {cache}", flush=True)
    variants = [
        ("lora train-mode sampled", model, True, sampled, False),
        ("lora train-mode greedy", model, True, greedy, False),
        ("plain model (no LoRA) eval-mode greedy", plain, False, greedy, False),
        ("plain model (no LoRA) eval-mode sampled", plain, False, sampled, False),
        ("lora train-mode through a merged copy, sampled", model, True, sampled, True),
        ("lora train-mode through a merged copy, greedy", model, True, greedy, True),
    ]
    for name, target, train_mode, config, merged in variants:
        torch._dynamo.utils.counters.clear()
        target.train(train_mode)
        rollouts = StaticLoopRollouts(target, target.generate, cache, merge_lora=merged)
        with torch.no_grad():
            seconds, host = timed_rollout(rollouts, inputs, config)
        stats = dict(torch._dynamo.utils.counters["stats"])
        breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
        print(f"{name}: {seconds:.3f} s per rollout, {1000 * seconds / 256:.2f} ms/token, host enqueue "
              f"{host:.3f} s, loop calls {rollouts.loop_calls}, generate calls {rollouts.generate_calls}, "
              f"dynamo {stats}, graph breaks {breaks}", flush=True)
        if rollouts.merged is not None:
            refresh = statistics.median(timed(rollouts.merged.refresh)[0] for _ in range(5))
            print(f"  merged copy: {rollouts.merged.merged_bytes / 2**20:.0f} MiB, refresh {1000 * refresh:.1f} ms",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
