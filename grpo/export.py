"""`grpo export RUN`: a trained run as something other tools load without grpo.

A run directory holds a LoRA adapter on top of a base model that grpo resolves (embedded name, GGUF, hub id).
Users want a plain merged model folder (transformers, vLLM), and from it a GGUF (llama.cpp, Ollama, LM Studio)
or a Hub upload; each starts from the same merge, done once.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import ConfigError, load_config
from grpo.eval_run import resolve_target
from grpo.models import resolve_path


def merge(run: str, out: Path) -> Path:
    """Write base + adapter merged into ``out``: weights in the base model's dtype, tokenizer with its chat
    template, generation config. Loads with plain ``AutoModelForCausalLM.from_pretrained(out)``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = resolve_target(str(Path(run).expanduser()), load_config(None))
    if target.adapter is None:
        raise ConfigError(f"export: {run} is not a run directory, checkpoint or adapter folder")
    base = resolve_path(target.base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")  # the dtype the base was saved in
    merged = PeftModel.from_pretrained(model, target.adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
