"""Rollout (generation inside a GRPO step) settings that TRL does not expose, and the static decode loop
(:mod:`grpo.eval.static_decode`) as the decoder of TRL's rollouts (``train.rollout_decoder: static_loop``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers import GenerationConfig

from grpo.eval import static_decode
from grpo.eval.fused_projections import fuse_projections
from grpo.train.merged_copy import MergedCopy

logger = logging.getLogger("grpo")
# What TRL's rollout call passes (``unwrapped_model.generate(**generate_inputs, generation_config=...)``, TRL 1.15
# and 1.16, text-only prompts); anything more (images, token type ids) goes to model.generate.
ROLLOUT_INPUTS = frozenset({"input_ids", "attention_mask", "generation_config"})


def enable_compiled_decoding(trainer, cache_implementation: str | None, max_cache_len: int | None = None) -> bool:
    """With a static KV cache, let transformers compile the decode step inside TRL's rollouts, for one cache size.

    TRL (1.15 and 1.16) builds its ``GenerationConfig`` with ``disable_compile=True``, so ``cache_implementation:
    static`` alone changes nothing: measured on an H100, a SmolLM2-135M GRPO step took the same time with either
    cache. Re-enabling compilation is what turns the static cache into fast decoding (docs/benchmarks.md).

    ``max_cache_len`` (the longest training prompt plus ``max_completion_length``) sizes the cache once for the
    whole run. Without it transformers sizes the cache to each batch's longest prompt, growing it whenever a longer
    one comes, and every new size recompiles the decode step: on two H200s each run recompiled two or three times
    in its first three steps, 45-70 s each (docs/benchmarks.md). Returns whether compilation was enabled.
    """
    config = getattr(trainer, "generation_config", None)
    if cache_implementation != "static" or config is None:
        return False
    config.disable_compile = False
    if max_cache_len is not None:
        config.max_cache_len = max_cache_len
    return True


@dataclass(frozen=True)
class LoopSettings:
    """What the static loop needs from one ``generate`` call's generation config, as ``generate`` resolves it."""

    sampling: static_decode.Sampling
    max_new_tokens: int
    eos_ids: tuple[int, ...]
    pad_id: int
    resolved: GenerationConfig


def loop_settings(model, generation_config: GenerationConfig) -> LoopSettings | str:
    """The loop's settings for ``model.generate(..., generation_config=generation_config)``, or why the loop cannot
    decode that call as ``generate`` would.

    The config is first resolved by ``generate``'s own step (``_prepare_generation_config``: fields the caller left
    unset come from the model's generation config, then transformers' global defaults, e.g. ``top_k`` 50), so the
    loop samples from the distribution ``generate`` would sample from, and a setting the loop does not implement is
    seen wherever it comes from.
    """
    try:
        resolved, _ = model._prepare_generation_config(generation_config)
    except Exception as err:  # noqa: BLE001 - generate itself will raise it, with its own message
        return f"transformers could not resolve the generation config ({type(err).__name__}: {err})"
    reason = static_decode.unsupported_reason(model, resolved)
    if reason is not None:
        return reason
    if resolved.max_new_tokens is None:
        return "the generation config sets no max_new_tokens"
    eos = resolved.eos_token_id
    eos_list = [int(token) for token in (eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])]
    pad_id = resolved.pad_token_id if resolved.pad_token_id is not None else (eos_list[0] if eos_list else None)
    if pad_id is None:
        return "the generation config sets neither pad_token_id nor eos_token_id"
    try:
        sampling = static_decode.Sampling(
            do_sample=True, temperature=1.0 if resolved.temperature is None else resolved.temperature,
            top_p=1.0 if resolved.top_p is None else resolved.top_p, top_k=resolved.top_k or 0,
        ) if resolved.do_sample else static_decode.Sampling()
    except ValueError as err:
        return str(err)
    return LoopSettings(sampling, resolved.max_new_tokens, tuple(sorted(set(eos_list))), int(pad_id), resolved)


def rollout_generator(device: torch.device) -> torch.Generator:
    """A generator for one rollout on ``device``, seeded with a draw from the global torch RNG.

    Why: ``model.generate`` samples from the global RNG, which transformers seeds from ``run.seed`` when the trainer
    is built (``set_seed``) and which its checkpoints save and a resume restores. Seeding the loop's generator from
    that RNG keeps the loop's rollouts a function of ``run.seed`` as well: the same seed gives the same rollouts,
    another seed other ones, and each draw advances the global RNG, so successive rollouts differ. A generator
    seeded once with ``run.seed`` instead would ignore the resume's restored state. (The tokens drawn are not those
    ``generate`` would draw for the same seed: it consumes the RNG differently.)
    """
    seed = int(torch.randint(0, 2**62, (1,)))  # the CPU generator: no device sync
    return torch.Generator(device=device).manual_seed(seed)


class StaticLoopRollouts:
    """Stands in for ``model.generate`` (an instance attribute of the model TRL unwraps for generation): TRL's
    rollout call goes through the static decode loop, every other call to the original ``generate``, unchanged.

    TRL's rollout call is ``generate(input_ids=..., attention_mask=..., generation_config=...)`` with left-padded
    prompts; it returns the prompt ids followed by the new tokens, pad after each row's eos, as ``generate`` does
    (TRL masks everything after the first eos). A call with a ``generation_config`` the loop cannot decode as
    ``generate`` would, or with other inputs, goes to ``generate`` (said once per reason in the log); a call
    without a ``generation_config`` (the pipeline's evaluations pass plain keyword settings) goes there silently.

    One decoder and one cache length (``max_cache_len``: the longest training prompt plus
    ``max_completion_length``) serve the whole run, so the step compiles (or is captured) once on CUDA; a longer
    padded prompt (TRL's ``pad_to_multiple_of``, a prompt longer than planned) grows the cache once, with a line in
    the log. The
    cache stays allocated between rollouts (as transformers keeps its own static cache on the model), so the
    training step's memory carries one rollout's KV cache on top of what ``generate``'s dynamic cache would leave.

    ``merge_lora``: a LoRA policy is decoded through a :class:`grpo.train.merged_copy.MergedCopy` (built at the first
    rollout, on the device the policy trains on, and refreshed before every rollout) instead of the adapter layers;
    a policy that cannot be merged that way is decoded as it is, with the reason in the log once. The copy's
    projections are fused (:mod:`grpo.eval.fused_projections`). Where the adapter leaves a projection out, the
    copy shares that frozen weight with the policy, so fusing makes the policy's own parameter a view into the
    copy's stacked weight: the same values, read the same way by the policy's forward (a save of the whole model
    would find such weights sharing one storage; the adapter alone is what this project saves).
    ``grouped_attention``: the decoder's setting of that name (off only to measure what it saves).
    ``logprobs``: the loop also records each sampled token's log-probability; the latest rollout's are kept until
    :meth:`take_logprobs` (:mod:`grpo.train.off_policy` weighs the training tokens with them).
    """

    def __init__(self, model, generate, max_cache_len: int, sync_every: int = static_decode.SYNC_EVERY,
                 runner: str | None = None, merge_lora: bool = False, grouped_attention: bool = True,
                 logprobs: bool = False):
        self.model, self.generate, self.max_cache_len = model, generate, max_cache_len
        self.sync_every, self.runner, self.merge_lora = sync_every, runner, merge_lora
        self.grouped_attention, self.logprobs = grouped_attention, logprobs
        self.latest_logprobs: torch.Tensor | None = None
        self.loop_calls = 0  # rollouts the loop decoded
        self.generate_calls = 0  # calls handed to the original generate
        self.decoder: static_decode.StaticDecoder | None = None
        self.merged: MergedCopy | None = None
        self._said: set[str] = set()

    def __call__(self, *args, **kwargs):
        config = kwargs.get("generation_config")
        if config is None:  # not TRL's rollout call
            self.generate_calls += 1
            return self.generate(*args, **kwargs)
        settings = self._settings(args, kwargs)
        if isinstance(settings, str):
            self._say_once(f"rollout decoder static_loop: {settings}; this call decodes with model.generate")
            self.generate_calls += 1
            return self.generate(*args, **kwargs)
        input_ids, attention_mask = kwargs["input_ids"], kwargs["attention_mask"]
        decoder = self._decoder(settings, input_ids.shape[1], self._decode_model())
        generator = rollout_generator(decoder.device) if settings.sampling.do_sample else None
        new_tokens = decoder(input_ids, attention_mask, generator)
        self.loop_calls += 1
        if self.logprobs:
            self.latest_logprobs = decoder.result_logprobs()
        return torch.cat([input_ids, new_tokens.to(input_ids.dtype)], dim=1)

    def take_logprobs(self) -> torch.Tensor | None:
        """The latest rollout's per-token log-probabilities (rows x its new tokens, 0 after each row's eos), once;
        None when the loop decoded nothing since the last take or does not record them."""
        latest, self.latest_logprobs = self.latest_logprobs, None
        return latest

    def _settings(self, args, kwargs) -> LoopSettings | str:
        extra = sorted(set(kwargs) - ROLLOUT_INPUTS)
        if args or extra:
            return f"the call passes arguments the loop does not take ({', '.join(extra) or 'positional arguments'})"
        input_ids, attention_mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if input_ids is None or attention_mask is None or input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            return "the call needs 2-D input_ids with an attention_mask of the same shape"
        if not bool(attention_mask[:, -1].all()):
            return "the prompts are not left-padded"
        return loop_settings(self.model, kwargs["generation_config"])

    def _decode_model(self):
        """The model the loop decodes with: the merged copy, refreshed from the current adapter, when there is one.
        Its projections are fused (:mod:`grpo.eval.fused_projections`), checked again after every refresh: a call
        that costs a walk over the modules while the fusion is intact."""
        if not self.merge_lora or not hasattr(self.model, "get_base_model"):
            return self.model
        if self.merged is None:
            try:
                self.merged = MergedCopy(self.model)
            except ValueError as err:  # unmergeable_reason's, or a copy that would not run its own layers
                self._say_once(f"rollout decoder static_loop: decoding through the LoRA layers, not a merged copy: "
                               f"{err}")
                self.merge_lora = False
                return self.model
            reason = fuse_projections(self.merged.model)
            self._say_once(f"rollout decoder static_loop: decoding with a merged copy of the LoRA policy "
                           f"({self.merged.merged_bytes / 2**20:.0f} MiB of merged weights), refreshed before every "
                           "rollout; " + (f"projections not fused: {reason}" if reason else
                                          "q/k/v and gate/up projections fused (one product each)"))
        else:
            self.merged.refresh()
            reason = fuse_projections(self.merged.model)
            if reason is not None:
                self._say_once(f"rollout decoder static_loop: the merged copy's projections are not fused: {reason}")
        return self.merged.model

    def _decoder(self, settings: LoopSettings, prompt_length: int, model) -> static_decode.StaticDecoder:
        needed = prompt_length + settings.max_new_tokens
        if needed > self.max_cache_len:
            self._say_once(f"rollout decoder static_loop: a padded prompt of {prompt_length} tokens needs a cache of "
                           f"{needed} tokens, more than the {self.max_cache_len} planned; the cache grows (on CUDA "
                           "the step compiles or is captured again)")
            self.max_cache_len = needed
        kept = self.decoder
        if kept is None or not kept.serves(model, self.max_cache_len, settings.max_new_tokens, settings.eos_ids,
                                           settings.pad_id, settings.sampling, self.logprobs):
            self.decoder = static_decode.StaticDecoder(
                model, self.max_cache_len, settings.max_new_tokens, settings.eos_ids, settings.pad_id,
                settings.sampling, self.sync_every, self.runner, generation_config=settings.resolved,
                grouped_attention=self.grouped_attention, logprobs=self.logprobs)
        return self.decoder

    def _say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            logger.warning(message)


def _rollout_model(trainer):
    """The model whose ``generate`` TRL's rollouts call: ``unwrap_model_for_generation`` yields
    ``accelerator.unwrap_model(trainer.model_wrapped)``, the same object as the unwrapped ``trainer.model`` (the
    PeftModel under LoRA, under plain training, DDP and gathered ZeRO-3 alike)."""
    return trainer.accelerator.unwrap_model(trainer.model)


INSTALLED = "_grpo_static_loop_rollouts"  # the trainer's attribute holding what install_static_loop installed


def installed_rollouts(trainer) -> StaticLoopRollouts | None:
    """The :class:`StaticLoopRollouts` that :func:`install_static_loop` put in front of ``trainer``'s generate, if
    any (kept on the trainer: whatever wraps ``generate`` later, such as the bench's phase timers, hides it there)."""
    return getattr(trainer, INSTALLED, None)


def static_loop_unsupported(trainer) -> str | None:
    """Why TRL's rollouts of this trainer cannot go through the static decode loop (None: they can)."""
    if getattr(trainer, "use_vllm", False):
        return "TRL generates the rollouts with vLLM"
    if getattr(trainer, "use_transformers_continuous_batching", False) or getattr(
            trainer.args, "use_transformers_paged", False):
        return "TRL generates the rollouts with transformers' continuous batching (generate_batch)"
    if getattr(trainer, "generation_config", None) is None:
        return "TRL built no GenerationConfig for model.generate"
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if (getattr(trainer, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3
            and not trainer.args.ds3_gather_for_generation):
        return "DeepSpeed ZeRO-3 with ds3_gather_for_generation false leaves the weights sharded while generating"
    settings = loop_settings(_rollout_model(trainer), trainer.generation_config)
    return settings if isinstance(settings, str) else None


def install_static_loop(trainer, max_cache_len: int, runner: str | None = None, merge_lora: bool = False,
                        grouped_attention: bool = True, logprobs: bool = False) -> bool:
    """Make TRL's rollout calls of ``trainer`` decode with the static loop (:class:`StaticLoopRollouts` in place of
    the generation model's ``generate``), with a cache of ``max_cache_len`` tokens for the whole run. Returns
    whether it was installed: not when :func:`static_loop_unsupported` gives a reason.

    ``runner``: how the loop's step runs (:data:`grpo.eval.static_decode.RUNNERS`; None: compiled on CUDA, eager
    elsewhere). ``merge_lora``: decode a LoRA policy through a merged copy (``train.rollout_merged_lora``).
    ``grouped_attention``: :class:`grpo.eval.static_decode.StaticDecoder`'s setting. ``logprobs``: record the
    sampled tokens' log-probabilities (``train.rollout_off_policy_correction``).
    """
    if static_loop_unsupported(trainer) is not None:
        return False
    model = _rollout_model(trainer)
    if not isinstance(model.generate, StaticLoopRollouts):
        model.generate = StaticLoopRollouts(model, model.generate, max_cache_len, runner=runner,
                                            merge_lora=merge_lora, grouped_attention=grouped_attention,
                                            logprobs=logprobs)
    setattr(trainer, INSTALLED, model.generate)
    return True
