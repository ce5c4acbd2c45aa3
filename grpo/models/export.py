"""`grpo export RUN`: a trained run as something other tools load without grpo.

A run directory holds a LoRA adapter on top of a base model that grpo resolves (embedded name, GGUF, hub id).
Users want a plain merged model folder (transformers, vLLM), and from it a GGUF (llama.cpp, Ollama, LM Studio)
or a Hub upload; each starts from the same merge, done once.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import ConfigError, load_config
from grpo.eval.eval_run import resolve_target
from grpo.models.model_card import model_card
from grpo.models.loading import resolve_path


def merge(run: str, out: Path) -> Path:
    """Write base + adapter merged into ``out``: weights in the base model's dtype, tokenizer with its chat
    template, generation config. Loads with plain ``AutoModelForCausalLM.from_pretrained(out)``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _target(run)
    base = resolve_path(target.base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")  # the dtype the base was saved in
    merged = PeftModel.from_pretrained(model, target.adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    (out / "README.md").write_text(model_card(target.config, target.label))
    return out


def _target(run: str):
    target = resolve_target(str(Path(run).expanduser()), load_config(None))
    if target.adapter is None:
        raise ConfigError(f"export: {run} is not a run directory, checkpoint or adapter folder")
    return target


def push_to_hub(folder: Path, repo_id: str, private: bool = True) -> str:
    """Create the Hub repository (private unless asked) and upload the merged folder; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="grpo export")
    return str(url)
