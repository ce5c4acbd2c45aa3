"""Model loading: backend selection and its errors, model locations, LoRA on a tiny model."""

from __future__ import annotations

import pytest

from grpo.models import loading as models
from grpo.config import ConfigError, ModelSection


def test_auto_is_hf_without_cuda():
    assert models.resolve_backend(ModelSection(backend="auto")) == "hf"


def test_auto_is_unsloth_with_cuda_and_the_package(monkeypatch):
    monkeypatch.setattr(models, "cuda_available", lambda: True)
    monkeypatch.setattr(models, "unsloth_installed", lambda: True)
    assert models.resolve_backend(ModelSection(backend="auto")) == "unsloth"
    monkeypatch.setattr(models, "unsloth_installed", lambda: False)
    assert models.resolve_backend(ModelSection(backend="auto")) == "hf"


@pytest.mark.parametrize(
    ("section", "cuda", "installed", "message"),
    [
        (ModelSection(backend="unsloth"), False, True, "'unsloth' needs an NVIDIA GPU with CUDA"),
        (ModelSection(backend="unsloth"), True, False, "'unsloth' is not installed"),
        (ModelSection(backend="hf", load_in_4bit=True), False, False, r"4-bit loading \(bitsandbytes\) needs a CUDA"),
    ],
)
def test_backend_errors_are_clear(monkeypatch, section, cuda, installed, message):
    monkeypatch.setattr(models, "cuda_available", lambda: cuda)
    monkeypatch.setattr(models, "unsloth_installed", lambda: installed)
    with pytest.raises(ConfigError, match=message):
        models.resolve_backend(section)


def test_cli_exits_2_when_unsloth_is_chosen_on_a_cpu(capsys):
    from grpo.cli import main

    assert main(["train", "configs/quickstart.yaml", "model.backend=unsloth"]) == 2
    assert "model.backend: 'unsloth' needs an NVIDIA GPU" in capsys.readouterr().err


def test_resolve_path(tmp_path, monkeypatch, tiny_model_dir):
    assert models.resolve_path(str(tiny_model_dir)) == str(tiny_model_dir)  # a local folder
    assert models.resolve_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"  # a hub id, untouched
    monkeypatch.setattr(models, "ensure_embedded", lambda name: tmp_path / "converted")
    assert models.resolve_path("SmolLM2-135M-Instruct") == str(tmp_path / "converted")  # embedded, any case
    with pytest.raises(ConfigError, match="GGUF file 'missing.gguf' does not exist"):
        models.resolve_path("missing.gguf")


def test_hf_load_applies_lora_as_configured(tiny_model_dir):
    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf",
                                      lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}), seed=1)
    assert loaded.backend == "hf" and loaded.tokenizer.padding_side == "left"
    trainable = [name for name, p in loaded.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".")[-4] for name in trainable} == {"q_proj", "v_proj"}
    config = loaded.model.peft_config["default"]
    assert (config.r, config.lora_alpha) == (4, 8)
    # same seed, same initial adapter
    again = models.load(ModelSection(name=str(tiny_model_dir), backend="hf",
                                     lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}), seed=1)
    first = dict(loaded.model.named_parameters())
    assert all((first[n] == p).all() for n, p in again.model.named_parameters() if "lora_A" in n)


def test_hf_load_without_lora(tiny_model_dir):
    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", lora={"enabled": False}))
    assert not hasattr(loaded.model, "peft_config")
