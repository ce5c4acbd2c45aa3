"""How far rollouts decoded through a merged copy of the LoRA policy (train.rollout_merged_lora) are off-policy.

The copy holds W + scale * B @ A rounded once to the model's dtype; training scores the same tokens with the
unmerged adapter layers. This samples completions from the copy, as its rollouts would, and compares the
per-token log-probabilities (of softmax(logits / temperature), what TRL's loss uses) under the copy and under the
policy, both in bf16. For scale, it also compares the bf16 policy with the same policy in float32: the rounding
noise training already carries. It reports the importance ratio exp(logp_policy - logp_copy) that an uncorrected
rollout leaves out, and the share of tokens where that ratio falls outside [0.8, 1.2], TRL's default clip
range (epsilon 0.2).

Usage: python scripts/merged_rollout_gap.py RUN_DIR [--prompts 32] [--new-tokens 128] [--out gap.json]
RUN_DIR: a run directory with adapter/ and config.yaml (its base model, prompts and temperature are used).
Runs on a CPU in a few minutes for SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from grpo.config import load_config
from grpo.data.splits import load_splits
from grpo.eval.static_decode import Sampling, StaticDecoder
from grpo.models.loading import load_tokenizer, resolve_path
from grpo.train.merged_copy import MergedCopy


@torch.no_grad()
def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, prompt_length: int, temperature: float):
    """log softmax(logits / T) of each completion token (batch x completion length)."""
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
    logits = logits[:, prompt_length - 1 : -1] / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_length:, None]).squeeze(-1)


def summary(differences: torch.Tensor) -> dict[str, float]:
    absolute = differences.abs()
    ratio = differences.exp()
    return {"tokens": int(differences.numel()), "mean": float(differences.mean()),
            "mean_abs": float(absolute.mean()), "p99_abs": float(absolute.quantile(0.99)),
            "max_abs": float(absolute.max()),
            "share_ratio_outside_0.8_1.2": float(((ratio < 0.8) | (ratio > 1.2)).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config = load_config(args.run / "config.yaml")
    path = resolve_path(config.model.name)
    tokenizer = load_tokenizer(path)
    rows = load_splits(config.data, tokenizer).held_out.select(range(args.prompts))
    encoded = tokenizer.apply_chat_template(list(rows["prompt"]), add_generation_prompt=True, padding=True,
                                            return_tensors="pt", return_dict=True)
    temperature = config.train.temperature
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16),
                                       args.run / "adapter").eval()
    merged = MergedCopy(policy)
    prompt_length = encoded["input_ids"].shape[1]
    decoder = StaticDecoder(merged.model, prompt_length + args.new_tokens, args.new_tokens,
                            [tokenizer.eos_token_id], tokenizer.pad_token_id,
                            Sampling(True, temperature, config.train.top_p))
    completion = decoder(encoded["input_ids"], encoded["attention_mask"], torch.Generator().manual_seed(args.seed))
    ids = torch.cat([encoded["input_ids"], completion], dim=1)
    real = torch.ones_like(completion)  # a completion's tokens up to and including its eos; pad after it is not
    for row, tokens in enumerate(completion.tolist()):
        if tokenizer.eos_token_id in tokens:
            real[row, tokens.index(tokenizer.eos_token_id) + 1 :] = 0
    mask = torch.cat([encoded["attention_mask"], real], dim=1)
    scored = real.bool()
    copy = token_logprobs(merged.model, ids, mask, prompt_length, temperature)[scored]
    bf16 = token_logprobs(policy, ids, mask, prompt_length, temperature)[scored]
    fp32 = token_logprobs(policy.float(), ids, mask, prompt_length, temperature)[scored]
    result = {
        "run": str(args.run), "model": config.model.name, "prompts": args.prompts, "new_tokens": args.new_tokens,
        "temperature": temperature, "seed": args.seed,
        "mean_completion_tokens": statistics.fmean(real.sum(1).tolist()),
        "policy_bf16_minus_merged_copy": summary(bf16 - copy),
        "policy_bf16_minus_policy_fp32": summary(bf16 - fp32),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
