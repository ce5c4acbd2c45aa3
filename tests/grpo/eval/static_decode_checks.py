"""Helpers shared by the static decode loop's CPU tests (evaluation and rollouts) and its GPU tests (tests/gpu): a
context-sensitive tiny model, left-padded prompts of different lengths, eos ids that end some or all rows early, the
model's exact next-token distributions and teacher-forced log-probabilities, and a chi-square p-value."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.eval.static_decode import Sampling, StaticDecoder, decode

PROMPTS = [
    [{"role": "user", "content": "What is 12 + 7?"}],
    [{"role": "user", "content": "3 + 4 = 7 then how many apples does Ava have now? Think step by step"}],
    [{"role": "user", "content": "0 1 2"}],
    [{"role": "user", "content": "Solve the math problem."}],
    [{"role": "user", "content": "boxed frac 9 ####"}],
]


def sharpened_model(folder, device: str = "cpu"):
    """The fixture's tiny Llama with every matrix redrawn at std 0.3 (seeded), in eval mode, and its tokenizer.

    Why: at the initial std 0.02 the model repeats one token whatever the context, so a wrong position id, mask or
    cache slot would go unnoticed; with these weights the next token depends on the whole prefix.
    """
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    return model.to(device).eval(), tokenizer


def encode(tokenizer, prompts, device: str = "cpu"):
    return tokenizer.apply_chat_template(prompts, add_generation_prompt=True, padding=True, return_tensors="pt",
                                         return_dict=True).to(device)


def greedy_generate(model, encoded, max_new_tokens: int, eos_ids, pad_id: int) -> torch.Tensor:
    """``model.generate``'s greedy new tokens (the reference the loop must equal)."""
    output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                            top_k=None, eos_token_id=list(eos_ids), pad_token_id=pad_id)
    return output[:, encoded["input_ids"].shape[1]:]


@torch.no_grad()
def teacher_forced_logprobs(model, encoded, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) of each of ``tokens`` given the prompt and the tokens before it, in one forward of
    the whole left-padded sequence (as TRL's training forward computes them)."""
    ids = torch.cat([encoded["input_ids"], tokens], dim=1)
    mask = torch.cat([encoded["attention_mask"], torch.ones_like(tokens)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
    prompt = encoded["input_ids"].shape[1]
    scores = torch.log_softmax(logits[:, prompt - 1:-1] / temperature, dim=-1)
    return scores.gather(-1, tokens[..., None]).squeeze(-1)


def stopping_eos(free: torch.Tensor) -> tuple[set[int], set[int]]:
    """From greedy tokens decoded without eos: a few ids that end some rows early, and ids that end every row
    by column 10 (each row's token there)."""
    return {int(free[0, 4]), int(free[1, 3])}, set(free[:, 10].tolist())


def check_lagged_stop(model, tokenizer, prompts, max_new_tokens: int, sync_every: int, device: str = "cpu",
                      calls: int = 1, runner: str | None = None) -> None:
    """With eos ids that end every row early, a :class:`StaticDecoder` returns generate's tokens and stops at the
    first question after one whose answer is yes (asked once all W tokens of the widest row exist, i.e. after W - 1
    steps): never before, and before the limit. ``calls``: decode the same prompts that many times with one decoder
    (each call must not read an earlier call's answer). ``runner``: the decoder's (default: the device's)."""
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, prompts, device)
    every = stopping_eos(greedy_generate(model, encoded, max_new_tokens, [], pad))[1]
    expected = greedy_generate(model, encoded, max_new_tokens, every, pad)
    width = expected.shape[1]
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + max_new_tokens, max_new_tokens, every, pad,
                            sync_every=sync_every, runner=runner)
    steps = []
    step = decoder.step
    decoder.step = lambda: steps.append(1) or step()
    first_yes = -(-width // sync_every) * sync_every  # the first question asked after width - 1 steps
    for _ in range(calls):
        steps.clear()
        assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]), expected)
        assert width - 1 < len(steps) == first_yes + sync_every - 1 < max_new_tokens - 1


@torch.no_grad()
def next_token_probs(model, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T) of the token after each row of ``ids`` (unpadded rows), in float64."""
    logits = model(input_ids=ids).logits[:, -1, :].double()
    return torch.softmax(logits / temperature, dim=-1)


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> float:
    """Pearson's goodness-of-fit p-value of ``counts`` (one per category) against ``probs``; categories expected
    fewer than ``min_expected`` times are pooled into one (the chi-square approximation needs about 5 per cell)."""
    counts, probs = counts.double().flatten(), probs.double().flatten()
    expected = counts.sum() * probs / probs.sum()
    kept = expected >= min_expected
    observed_cells = torch.cat([counts[kept], counts[~kept].sum()[None]])
    expected_cells = torch.cat([expected[kept], expected[~kept].sum()[None]])
    if expected_cells[-1] < min_expected:  # nothing (or too little) to pool: fold the pool into the last cell
        observed_cells = torch.cat([observed_cells[:-2], observed_cells[-2:].sum()[None]])
        expected_cells = torch.cat([expected_cells[:-2], expected_cells[-2:].sum()[None]])
    statistic = ((observed_cells - expected_cells) ** 2 / expected_cells).sum()
    degrees = torch.tensor(len(expected_cells) - 1, dtype=torch.float64)
    return float(torch.special.gammaincc(degrees / 2, statistic / 2))


def sampled_pair_p_values(model, tokenizer, rows: int, temperature: float, seed: int, **options) -> tuple[float, float]:
    """Chi-square p-values of ``rows`` sampled (first, second) token pairs of one prompt against the exact joint
    distribution p(t1) p(t2 | t1), and of the first tokens against p(t1); each factor is softmax(logits / T) of a
    plain forward pass (the second for every vocabulary continuation at once). A pair test also catches random
    numbers reused between the prefill and the step: the two tokens would be dependent."""
    device = next(model.parameters()).device
    ids = encode(tokenizer, PROMPTS[:1], device)["input_ids"]
    tokens = decode(model, ids.expand(rows, -1), torch.ones(rows, ids.shape[1], dtype=torch.long, device=device),
                    2, [], tokenizer.pad_token_id, Sampling(do_sample=True, temperature=temperature),
                    torch.Generator(device).manual_seed(seed), **options).cpu()
    vocab = model.config.vocab_size
    continuations = torch.cat([ids.expand(vocab, -1), torch.arange(vocab, device=device)[:, None]], 1)
    first = next_token_probs(model, ids, temperature)[0].cpu()
    joint = first[:, None] * next_token_probs(model, continuations, temperature).cpu()
    pairs = torch.bincount(tokens[:, 0] * vocab + tokens[:, 1], minlength=vocab * vocab)
    return chi_square_p_value(pairs, joint), chi_square_p_value(torch.bincount(tokens[:, 0], minlength=vocab), first)
