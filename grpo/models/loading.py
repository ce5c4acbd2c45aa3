"""Load the policy and its tokenizer: backend choice, model location, dtype, 4-bit, LoRA.

``model.name`` may be a local folder, a ``.gguf`` file (converted once into the cache), the name of an
embedded model (``smollm2-135m-instruct``), or a hub id. ``backend: auto`` picks Unsloth when a CUDA GPU and
the ``unsloth`` package are both present in a single-process run, else transformers + PEFT. Unsloth patches
transformers and TRL globally, so it is imported first and only when chosen.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo.train import distributed
from grpo.config import ConfigError, LoraSection, ModelSection
from grpo.models.embedded import cache_dir, ensure_embedded, is_embedded
from grpo.models.gguf import convert_gguf, sha256_of


@dataclass
class LoadedModel:
    model: Any  # a PeftModel when LoRA is enabled
    tokenizer: Any
    backend: str
    path: str  # what was actually loaded: a local folder or a hub id


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def resolve_backend(model: ModelSection) -> str:
    """The backend that will run: 'hf' or 'unsloth'; a clear error when 'unsloth' cannot run here."""
    if model.backend == "auto":  # Unsloth's multi-GPU support is outside what this pipeline tests: hf there
        single = distributed.launched_processes() == 1
        return "unsloth" if single and cuda_available() and unsloth_installed() else "hf"
    if model.backend == "unsloth":
        if not cuda_available():
            raise ConfigError("model.backend: 'unsloth' needs an NVIDIA GPU with CUDA (none found); use hf or auto")
        if not unsloth_installed():
            raise ConfigError("model.backend: 'unsloth' is not installed; pip install '.[unsloth]' or use hf")
    if model.load_in_4bit and not cuda_available():
        raise ConfigError("model.load_in_4bit: 4-bit loading (bitsandbytes) needs a CUDA GPU; set it to false")
    return model.backend


def prepare_backend(model: ModelSection) -> str:
    """Resolve the backend and, for Unsloth, import it now: it must patch transformers and TRL before they load."""
    backend = resolve_backend(model)
    if backend == "unsloth":
        import unsloth  # noqa: F401
    return backend


def resolve_path(name: str) -> str:
    """A local folder to load from (converting embedded or GGUF models once), or the hub id unchanged."""
    local = Path(name).expanduser()
    if local.suffix == ".gguf":
        if not local.is_file():
            raise ConfigError(f"model.name: GGUF file {name!r} does not exist")
        return str(convert_gguf(local, cache_dir() / "models" / f"{local.stem}-{sha256_of(local)[:12]}"))
    if local.is_dir():
        return str(local)
    if is_embedded(name):
        return str(ensure_embedded(name))
    return name


def torch_dtype(model: ModelSection):
    import torch

    if model.dtype != "auto":
        return getattr(torch, model.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32  # CPUs: fp32 is both the fastest and the most accurate choice for small models


def dtype_name(model) -> str:
    """'float32', 'bfloat16', ... of the model's parameters (the name KV-cache arithmetic and TRL flags use)."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def device_name(model) -> str:
    return str(next(model.parameters()).device)


def load_tokenizer(path: str):
    """Tokenizer padded on the left (batched generation needs prompts flush against their completions)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora_config(lora: LoraSection):
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM", bias="none")


def keep_one_input_grads_hook(model) -> None:
    """Make ``model.enable_input_require_grads`` replace its forward hook on the input embeddings instead of adding
    one more, and make that hook act only when gradients are enabled.

    Why one hook: with gradient checkpointing on a PEFT model, TRL (1.15, 1.16) turns checkpointing off around every
    rollout and on again after it, and transformers (5.17) ``gradient_checkpointing_enable`` then calls
    ``enable_input_require_grads``, which registers a new hook without removing the one before (it forgets the old
    handles). A run gathered two more hooks on the embeddings every GRPO step, each called in every forward: 2,000
    after 1,000 steps. The instance attribute shadows the method for every caller (TRL reaches it through the
    PeftModel's attribute forwarding); the hooks are transformers' own, found on the modules it chose.

    Why only with gradients: the hook calls ``requires_grad_`` on the embeddings' output, which torch.compile (2.11,
    the GPU image's) cannot trace. The static decode loop's compiled step (under ``inference_mode``) broke its graph
    there: on an H200 the GRPO bench's rollouts ran as several CUDA graphs with Python between them (dynamo's
    graph-break log, docs/benchmarks.md). Decoding needs no gradients, so there the hook now does nothing and the
    step compiles whole: one graph and no break in the bench since, though the rollouts took as long as before.
    """
    register = model.enable_input_require_grads

    def enable_input_require_grads() -> None:
        model.disable_input_require_grads()
        register()
        for handle in getattr(model, "_require_grads_hooks", []):
            hooks = handle.hooks_dict_ref()  # the embedding module's forward-hook dict
            if hooks is not None and handle.id in hooks:
                hooks[handle.id] = _only_with_gradients(hooks[handle.id])

    model.enable_input_require_grads = enable_input_require_grads


def _only_with_gradients(hook):
    """``hook``, skipped when gradients are disabled (``torch.no_grad``, ``inference_mode``): torch.compile reads the
    grad mode as a constant of the graph, so the skipped call leaves nothing to trace."""
    import torch

    def hook_with_gradients(module, args, output):
        return hook(module, args, output) if torch.is_grad_enabled() else None

    return hook_with_gradients


def _load_hf(model_cfg: ModelSection, path: str, gradient_checkpointing: bool):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch_dtype(model_cfg)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if model_cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
        )
        # bitsandbytes places the model at load time; under accelerate launch each process on its own GPU
        kwargs["device_map"] = {"": distributed.local_device_index()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    keep_one_input_grads_hook(model)
    if model_cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if model_cfg.lora.enabled:
        model = _apply_lora(model, model_cfg.lora, path)
    return model, load_tokenizer(path)


def adapter_folder(init_from: str) -> Path:
    """The adapter folder ``model.lora.init_from`` names: itself, or a run directory's ``adapter/``."""
    folder = Path(init_from)
    if (folder / "adapter" / "adapter_config.json").is_file():
        folder = folder / "adapter"
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"model.lora.init_from: no LoRA adapter in {init_from} (expected adapter_config.json there "
                          "or in its adapter/ folder)")
    return folder


def _load_adapter(model, lora: LoraSection):
    """The saved adapter, trainable, on the base model: a run that continues what another one learned.

    Its shape must be the one the config states (r, alpha, target modules), so that the run's saved config
    describes the adapter it trains; PEFT would otherwise silently use the saved shape.
    """
    from peft import LoraConfig, PeftModel

    folder = adapter_folder(lora.init_from)
    saved = LoraConfig.from_pretrained(str(folder))
    wanted = lora_config(lora)
    differences = [f"{name} {mine!r} here, {theirs!r} in the adapter" for name, mine, theirs in (
        ("r", wanted.r, saved.r), ("alpha", wanted.lora_alpha, saved.lora_alpha),
        ("target_modules", _module_names(model, wanted.target_modules), _module_names(model, saved.target_modules)))
        if mine != theirs]
    if differences:
        raise ConfigError(f"model.lora.init_from: {folder} does not match model.lora: {'; '.join(differences)}")
    # This config, not the saved one: dropout and the rest stay what the run's config.yaml says, and a --resume
    # (which builds the adapter from this config) continues with the same settings.
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True, config=wanted)


def _module_names(model, modules) -> set[str]:
    """Target modules as the set of layer names they pick: PEFT saves ``all-linear`` expanded to full paths."""
    if modules == "all-linear":
        return _linear_layer_names(model) - {"lm_head"}
    return {name.rsplit(".", 1)[-1] for name in modules}


def _linear_layer_names(model) -> set[str]:
    """The last name part of every linear layer of ``model`` (``q_proj``, ..., ``lm_head``)."""
    import torch

    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def _apply_lora(model, lora: LoraSection, path: str):
    """PEFT's "Target modules ... not found" becomes a config error listing the names the model does have."""
    from peft import get_peft_model

    if lora.init_from:
        return _load_adapter(model, lora)
    try:
        return get_peft_model(model, lora_config(lora))
    except ValueError as err:
        if "Target modules" not in str(err):
            raise
        linear = sorted(_linear_layer_names(model))
        raise ConfigError(f"model.lora.target_modules: {lora.target_modules} not found in {path}; its linear "
                          f"modules are {', '.join(linear)} (or use all-linear)") from None


def _load_unsloth(model_cfg: ModelSection, path: str, seed: int):
    from unsloth import FastLanguageModel  # must come before transformers/TRL are used

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=path, max_seq_length=model_cfg.max_seq_length, dtype=torch_dtype(model_cfg),
        load_in_4bit=model_cfg.load_in_4bit,
    )
    if model_cfg.lora.enabled:
        lora = model_cfg.lora
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
            use_gradient_checkpointing="unsloth" if model_cfg.gradient_checkpointing else False,
            random_state=seed,
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load(model_cfg: ModelSection, seed: int = 42) -> LoadedModel:
    """Load policy + tokenizer as configured (LoRA applied when enabled)."""
    backend = resolve_backend(model_cfg)
    if backend == "unsloth" and model_cfg.lora.enabled and model_cfg.lora.init_from:
        raise ConfigError("model.lora.init_from: supported with backend: hf only (set model.backend=hf)")
    path = resolve_path(model_cfg.name)
    if backend == "unsloth":
        model, tokenizer = _load_unsloth(model_cfg, path, seed)
    else:
        import torch

        torch.manual_seed(seed)  # LoRA A matrices are random: same seed, same initial adapter
        model, tokenizer = _load_hf(model_cfg, path, model_cfg.gradient_checkpointing)
    return LoadedModel(model=model, tokenizer=tokenizer, backend=backend, path=path)
