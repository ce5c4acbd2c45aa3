"""The run configuration: one small strict model per concern, loaded from YAML plus ``key.sub=value`` overrides.

Every mistake a user can make in a config (unknown or misspelt key, wrong type, missing file, a batch that
``num_generations`` does not divide, an unknown reward) becomes a :class:`ConfigError` whose lines each name the
key and say what is allowed. The CLI prints them and exits with code 2 before anything is written to disk.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grpo.train import distributed
from grpo.models.embedded import DEFAULT_MODEL
from grpo.models.portable import HomePath, HomeStr, OptionalHomeStr, RewardName


class ConfigError(ValueError):
    """A config mistake; ``str(err)`` is one line per problem, each naming the key."""


class _Section(BaseModel):
    # extra="forbid": a misspelt key is an error, never silently ignored. allow_inf_nan=False: every float setting
    # must be finite (`.inf` or `.nan` in YAML would otherwise train to an all-NaN adapter, or drop a reward).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RunSection(_Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="run directory name")
    output_dir: HomePath = Field(Path("runs"), description="parent folder of run directories")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="numpy accepts 0..2**32-1")


class LoraSection(_Section):
    enabled: bool = True
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    init_from: OptionalHomeStr = Field(
        None, description="start from this LoRA adapter (a run directory or its adapter folder) instead of a fresh "
        "one, e.g. GSM8K after a synthetic run; its r and target modules must match these")


class ModelSection(_Section):
    name: HomeStr = Field(DEFAULT_MODEL, description="hub id, local folder, .gguf file, or an embedded model name")
    backend: Literal["auto", "hf", "unsloth"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    max_seq_length: int = Field(1024, gt=0, description="longest prompt + completion (Unsloth sizes buffers by it)")
    lora: LoraSection = LoraSection()


class SyntheticSection(_Section):
    train_size: int = Field(2000, gt=0)
    eval_size: int = Field(200, gt=0)
    min_digits: int = Field(1, ge=1, le=9)
    max_digits: int = Field(2, ge=1, le=9)
    num_operations: int = Field(1, ge=1, le=5)
    min_operations: int | None = Field(None, ge=1, le=5, description="draw 1..num_operations steps from here up")
    operations: list[Literal["+", "-", "*"]] = Field(default_factory=lambda: ["+", "-"], min_length=1)
    word_problems: float = Field(0.0, ge=0.0, le=1.0, description="fraction phrased as short word problems")
    question_template: str = Field("What is {expression}?", pattern=r"\{expression\}",
                                   description="how a symbolic problem is asked; {expression} is replaced")
    seed: int = 1234


class DataSection(_Section):
    source: Literal["synthetic", "gsm8k", "file", "hub"] = "synthetic"
    path: OptionalHomeStr = Field(None, description="gsm8k folder or hub id; jsonl/parquet file; hub dataset id")
    eval_path: OptionalHomeStr = Field(None, description="held-out jsonl/parquet file (source: file)")
    train_split: str = "train"
    eval_split: str = "test"
    config: str | None = Field(None, description="dataset config (subset) name for hub datasets")
    columns: dict[str, str] = Field(default_factory=dict, description="rename map {source column: new name}")
    question_column: str = "question"
    answer_column: str = "answer"
    system_prompt: str = (
        "Solve the math problem. Think step by step, then finish with a final line of the form: The answer is N."
    )
    max_prompt_tokens: int = Field(512, gt=0)
    prompt_overflow: Literal["drop", "truncate"] = "drop"
    max_train_samples: int | None = Field(None, gt=0)
    skip_invalid: bool = Field(
        False, description="drop rows whose question or answer is missing or null (counted) instead of refusing")
    order: Literal["shuffle", "curriculum"] = Field(
        "shuffle", description="curriculum: training prompts easiest first (grpo.data.curriculum), not shuffled")
    synthetic: SyntheticSection = SyntheticSection()


class RewardSpec(_Section):
    name: RewardName = Field(description="registered reward name, 'package.module:function' or 'file.py:function'")
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    kwargs: dict[str, Any] | None = Field(None, description="arguments for a reward factory (module:get_..._reward)")
    on_error: Literal["raise", "none"] = "raise"
    gate: Literal["none", "correct"] = Field(
        "none", description="correct: paid only on completions whose final answer is right (rewards.gating)")


class DynamicSamplingSection(_Section):
    """DAPO's dynamic sampling: groups whose rewards are all equal carry no gradient; replace them."""

    enabled: bool = False
    max_rounds: int = Field(3, ge=0, description="extra generation rounds per batch to refill dropped groups")


class WarmStartSection(_Section):
    """Rejection-sampling warm start (STaR / RFT, grpo.train.warm_start): before GRPO, fine-tune on the policy's own
    sampled answers that the verifier accepts."""

    enabled: bool = False
    prompts: int = Field(256, gt=0, description="training prompts sampled (the first N of the training split)")
    samples_per_prompt: int = Field(8, gt=0)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int | None = Field(None, gt=0, description="default: train.max_completion_length")
    keep_per_prompt: int = Field(1, gt=0, description="distinct verified answers kept per prompt")
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    sampling_batch_size: int = Field(64, gt=0, description="completions generated at once while sampling")
    batch_size: int = Field(8, gt=0, description="fine-tuning batch")


class CollapseGuardSection(_Section):
    """Warnings (with the numbers) when training drifts into a state where it stops learning."""

    enabled: bool = True
    min_entropy: float = Field(0.3, ge=0.0, description="warn when mean token entropy falls below this")
    max_zero_std_fraction: float = Field(0.8, ge=0.0, le=1.0, description="warn above this share of flat groups")
    saturation: float = Field(0.95, ge=0.0, le=1.0, description="a non-correctness reward mean at or above this...")
    correctness_gain: float = Field(0.05, ge=0.0, description="...while correctness rose less than this: warn")
    window: int = Field(5, gt=0, description="logged steps averaged before judging")


class TrainSection(_Section):
    max_steps: int = Field(100, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    lr_scheduler_type: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr", "polynomial"
    ] = "constant_with_warmup"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    optim: str = "adamw_torch"
    per_device_train_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_generations: int = Field(8, ge=2)
    max_completion_length: int = Field(256, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1.0)
    top_k: int = Field(0, ge=0)
    beta: float = Field(0.0, ge=0.0, description="KL coefficient; 0 skips the reference model")
    epsilon: float = Field(0.2, gt=0)
    epsilon_high: float | None = Field(None, gt=0)
    num_iterations: int = Field(1, gt=0)
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    mask_truncated_completions: bool = False
    cache_implementation: Literal["dynamic", "static"] | None = None
    rollout_decoder: Literal["generate", "static_loop"] = Field(
        "generate", description="static_loop: TRL's rollouts decode with grpo.eval.static_decode's fixed-shape loop "
        "(its own static cache, compiled on CUDA; backend hf, no vLLM; Llama/Qwen2 and the sampling settings it "
        "implements, else model.generate, saying why); cache_implementation then applies to model.generate only")
    rollout_merged_lora: bool = Field(
        False, description="with rollout_decoder static_loop: decode a LoRA policy's rollouts through a copy with "
        "the adapter merged into the weights, refreshed before every rollout (fewer kernels per token; the samples "
        "then come from bf16-rounded merged weights, an off-policy gap, on a CPU about bf16's own against float32, "
        "corrected with rollout_off_policy_correction; on an H200 rollouts 1.8x faster inside the GRPO step than "
        "through the adapter layers, docs/benchmarks.md)")
    rollout_off_policy_correction: bool = Field(
        False, description="with rollout_decoder static_loop: truncated importance sampling, each completion "
        "token's advantage weighted by min(p_train / p_sampler, 2) from the log-probabilities the loop recorded and "
        "one extra forward without gradients, instead of treating the samples as the training forward's own: "
        "corrects the sampler's numeric gap (the merged copy's bf16-rounded weights, KV-cached decoding); "
        "grpo.train.off_policy")
    generation_kwargs: dict[str, Any] = Field(default_factory=dict)
    dynamic_sampling: DynamicSamplingSection = DynamicSamplingSection()
    warm_start: WarmStartSection = WarmStartSection()
    collapse_guard: CollapseGuardSection = CollapseGuardSection()
    time_limit_minutes: float | None = Field(
        None, gt=0, description="stop with a checkpoint this long after the trainer is built, warm start and evals included (resume to continue)")
    stall_report_minutes: float | None = Field(
        10, gt=0, description="when no training step has ended for this long, print every thread's stack to stderr "
        "(again every as long while none does; the run goes on); null turns it off")
    logging_steps: int = Field(1, gt=0)
    save_steps: int = Field(50, gt=0)
    save_total_limit: int | None = Field(2, gt=0)
    report_to: list[Literal["tensorboard", "trackio", "wandb", "none"]] = Field(default_factory=lambda: ["tensorboard"])
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="any other trl.GRPOConfig field, passed through (checked against the installed trl)")


class EvalSection(_Section):
    before_after: bool = Field(False, description="greedy eval on held-out problems before and after training")
    num_problems: int = Field(64, gt=0)
    max_new_tokens: int = Field(256, gt=0)
    batch_size: int = Field(16, gt=0)
    every_n_steps: int | None = Field(None, gt=0, description="held-out greedy eval at step 0 and every N steps")
    decoder: Literal["generate", "static_loop"] = Field(
        "generate", description="generate: model.generate; static_loop: grpo.eval.static_decode's fixed-shape loop "
                                "(one hand-captured CUDA graph a token on CUDA; Llama/Qwen2 only, others "
                                "fall back to generate)")


class LoggingSection(_Section):
    completions_every: int | None = Field(None, gt=0, description="write sampled completions every N steps")


class RunConfig(_Section):
    run: RunSection = RunSection()
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="math_correctness"), RewardSpec(name="answer_line", weight=0.5)],
        min_length=1,
    )
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    logging: LoggingSection = LoggingSection()

    @property
    def run_dir(self) -> Path:
        return self.run.output_dir / self.run.name

    def reward_context(self) -> dict[str, Any]:
        """Run settings that parameterised rewards take as defaults (e.g. the overlong penalty's limit)."""
        return {"max_completion_length": self.train.max_completion_length}


# ----------------------------------------------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.max_steps=5`` -> (["train", "max_steps"], 5). Values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected key.sub=value, e.g. train.max_steps=5")
    return key.split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_override(data: dict, path: list[str], value: Any) -> None:
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"{where}: is a value ({child!r}), so {'.'.join(path)} cannot be set")
        node = child
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(node, last, ".".join(path))] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{where}: expected an index 0..{len(node) - 1} into the list")
    return int(part)


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names allowed at the parent of ``loc`` (walks the schema along the location)."""
    model: Any = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        model = inner[0] if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel) else annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def _format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: dict) -> str:
    loc = error["loc"]
    key = _format_loc(loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        return f"{key}: unknown key{hint} allowed: {', '.join(allowed)}"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def from_dict(data: dict) -> RunConfig:
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError("\n".join(_describe(e) for e in err.errors())) from None
    check_consistency(config)
    return config


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read YAML (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (run, model, data, rewards, train, eval)")
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value)
    return from_dict(data)


def with_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """A validated copy of ``config`` with ``key.sub=value`` overrides applied."""
    data = config.model_dump(mode="json")
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value)
    return from_dict(data)


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# ------------------------------------------------------------------------------------------- cross-field checks


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


def generation_batch(train: TrainSection, processes: int) -> tuple[int, str]:
    """The global generation batch as trl's GRPOConfig computes it, and how it came about (for messages): every
    process generates ``per_device_train_batch_size x steps_per_generation`` completions (steps_per_generation
    defaults to gradient_accumulation_steps), unless ``train.trl.generation_batch_size`` fixes the total."""
    fixed = train.trl.get("generation_batch_size")
    if isinstance(fixed, int) and fixed > 0:
        return fixed, f"train.trl.generation_batch_size = {fixed}"
    steps = train.trl.get("steps_per_generation")
    name = "train.trl.steps_per_generation"
    if not (isinstance(steps, int) and steps > 0):
        steps, name = train.gradient_accumulation_steps, "gradient_accumulation_steps"
    batch = train.per_device_train_batch_size * processes * steps
    return batch, (f"per_device_train_batch_size x processes x {name} = "
                   f"{train.per_device_train_batch_size} x {processes} x {steps} = {batch}")


def check_consistency(config: RunConfig) -> None:
    """Checks that involve more than one field, or the file system; each problem names the key to change."""
    problems: list[str] = []
    train, data, model = config.train, config.data, config.model

    batch, formula = generation_batch(train, distributed.launched_processes())
    if batch % train.num_generations:
        problems.append(
            f"train.num_generations: {train.num_generations} must divide the generation batch {formula}; "
            f"allowed: {', '.join(map(str, _divisors(batch))) or 'none (batch too small)'}"
        )
    if train.dynamic_sampling.enabled and distributed.launched_processes() > 1:
        problems.append("train.dynamic_sampling.enabled: runs in a single process only (TRL's prompt groups may span "
                        "processes); set it to false under accelerate launch")
    if train.warm_start.enabled and distributed.launched_processes() > 1:
        problems.append("train.warm_start.enabled: runs in a single process only; warm-start the adapter in one "
                        "process, then launch the GRPO run from it")
    if data.source == "synthetic" and data.synthetic.min_digits > data.synthetic.max_digits:
        problems.append(
            f"data.synthetic.min_digits: {data.synthetic.min_digits} exceeds max_digits {data.synthetic.max_digits}"
        )
    minimum_steps = data.synthetic.min_operations
    if data.source == "synthetic" and minimum_steps is not None and minimum_steps > data.synthetic.num_operations:
        problems.append(f"data.synthetic.min_operations: {minimum_steps} exceeds num_operations "
                        f"{data.synthetic.num_operations}")
    if data.source == "file":
        if data.path is None:
            problems.append("data.path: required when data.source is 'file' (a .jsonl, .json or .parquet file)")
        elif not Path(data.path).is_file():
            problems.append(f"data.path: file {data.path!r} does not exist")
        elif Path(data.path).suffix not in (".jsonl", ".json", ".parquet"):
            problems.append(f"data.path: {data.path!r} must end in .jsonl, .json or .parquet")
    needs_held_out = [key for key, on in (("eval.before_after", config.eval.before_after),
                                          ("eval.every_n_steps", config.eval.every_n_steps)) if on]
    if data.source == "file" and data.eval_path is None and needs_held_out:
        problems.append(f"{needs_held_out[0]}: needs a held-out set, and data.source 'file' has none; "
                        "set data.eval_path or turn it off")
    if data.eval_path is not None and not Path(data.eval_path).is_file():
        problems.append(f"data.eval_path: file {data.eval_path!r} does not exist")
    if data.source == "hub" and data.path is None:
        problems.append("data.path: required when data.source is 'hub' (a dataset id such as 'openai/gsm8k')")
    if data.source == "gsm8k" and data.path and _looks_local(data.path) and not Path(data.path).is_dir():
        problems.append(f"data.path: folder {data.path!r} does not exist (expected train.jsonl and test.jsonl)")
    if _looks_local(model.name) and not Path(model.name).exists():
        problems.append(f"model.name: path {model.name!r} does not exist")
    if model.load_in_4bit and model.backend == "hf" and model.dtype == "float32":
        problems.append("model.load_in_4bit: needs a 16-bit compute dtype; set model.dtype to bfloat16 or auto")
    if train.rollout_decoder == "static_loop":
        problems.extend(_rollout_decoder_problems(train, model))
        sampling = sorted(set(train.generation_kwargs) & {"temperature", "do_sample"})
        if train.rollout_off_policy_correction and sampling:  # the loop samples at the generation config's
            # temperature, the trainer divides by train.temperature: their log-probabilities must agree
            problems.append(f"train.rollout_off_policy_correction: train.generation_kwargs sets {', '.join(sampling)}, "
                            "so the rollouts' temperature may differ from train.temperature, by which the trainer "
                            "divides; set train.temperature instead")
    else:
        if train.rollout_merged_lora:
            problems.append("train.rollout_merged_lora: only with train.rollout_decoder static_loop (model.generate "
                            "decodes through the adapter layers)")
        if train.rollout_off_policy_correction:
            problems.append("train.rollout_off_policy_correction: only with train.rollout_decoder static_loop "
                            "(model.generate does not return the sampled tokens' log-probabilities)")
    if train.epsilon_high is not None and train.epsilon_high < train.epsilon:
        problems.append(f"train.epsilon_high: {train.epsilon_high} is below train.epsilon {train.epsilon}")
    problems.extend(_optimizer_problems(train.optim))
    names = [spec.name for spec in config.rewards]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"rewards: each reward may appear once; repeated: {', '.join(duplicates)}")
    problems.extend(_reward_problems(config))
    if problems:
        raise ConfigError("\n".join(problems))


# train.trl switches with which TRL generates rollouts without calling model.generate, the call the static loop takes
ROLLOUT_ENGINES = ("use_vllm", "use_transformers_continuous_batching", "use_transformers_paged")


def _rollout_decoder_problems(train: TrainSection, model: ModelSection) -> list[str]:
    """``train.rollout_decoder: static_loop`` replaces the transformers model's ``generate`` in TRL's rollouts: with
    another rollout engine it would never run, and Unsloth replaces the attention and KV-cache code the loop relies on
    (untested there: refused rather than guessed)."""
    problems = [f"train.rollout_decoder: static_loop takes over model.generate, which train.trl.{key} bypasses; "
                "set one of them back" for key in ROLLOUT_ENGINES if train.trl.get(key)]
    if model.backend == "unsloth":
        problems.append("train.rollout_decoder: static_loop needs model.backend hf (Unsloth replaces the attention and "
                        "KV-cache code the loop relies on); set model.backend=hf or train.rollout_decoder=generate")
    return problems


def _optimizer_problems(optim: str) -> list[str]:
    """transformers' own list of optimizer names, so an unknown one is refused before any model loads."""
    from transformers.training_args import OptimizerNames

    allowed = [member.value for member in OptimizerNames]
    if optim in allowed:
        return []
    guess = difflib.get_close_matches(optim, allowed, n=1)
    return [f"train.optim: unknown optimizer {optim!r}{f'; did you mean {guess[0]!r}?' if guess else ''} "
            f"(transformers' OptimizerNames, e.g. adamw_torch, adamw_torch_fused, sgd, adafactor)"]


def _looks_local(name: str) -> bool:
    """A path the user meant as a file or folder on disk (rather than a hub id or an embedded name)."""
    return name.startswith((".", "/", "~")) or name.endswith((".gguf", ".jsonl", ".json", ".parquet"))


def _reward_problems(config: RunConfig) -> list[str]:
    import rewards

    problems = []
    for index, spec in enumerate(config.rewards):
        try:
            rewards.build(spec.name, spec.params, kwargs=spec.kwargs)
        except rewards.RewardSpecError as err:
            problems.append(f"rewards[{index}]: {err}")
    return problems
