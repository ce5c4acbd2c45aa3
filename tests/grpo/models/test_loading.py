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


def _saved_adapter(tiny_model_dir, folder, **lora):
    """An adapter whose LoRA B weights are not zero (a fresh one's are), saved as a run saves it."""
    import torch

    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", lora=lora), seed=3)
    with torch.no_grad():
        for name, parameter in loaded.model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.25)
    loaded.model.save_pretrained(folder)
    return {name: p.detach().clone() for name, p in loaded.model.named_parameters() if "lora_" in name}


def test_init_from_starts_training_from_a_saved_adapter(tiny_model_dir, tmp_path):
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    saved = _saved_adapter(tiny_model_dir, tmp_path / "run" / "adapter", **lora)
    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf",
                                      lora=lora | {"init_from": str(tmp_path / "run")}), seed=1)
    weights = {name: p for name, p in loaded.model.named_parameters() if "lora_" in name}
    assert weights.keys() == saved.keys()
    assert all((weights[name] == saved[name]).all() and weights[name].requires_grad for name in saved)
    assert all(not p.requires_grad for name, p in loaded.model.named_parameters() if "lora_" not in name)


def test_init_from_refuses_an_adapter_of_another_shape(tiny_model_dir, tmp_path):
    _saved_adapter(tiny_model_dir, tmp_path / "adapter", r=4, alpha=8, target_modules=["q_proj", "v_proj"])
    section = ModelSection(name=str(tiny_model_dir), backend="hf",
                           lora={"r": 8, "alpha": 8, "target_modules": ["q_proj"], "init_from": str(tmp_path / "adapter")})
    with pytest.raises(ConfigError, match=r"does not match model.lora: r 8 here, 4 in the adapter; target_modules"):
        models.load(section)


def test_init_from_a_folder_without_an_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    section = ModelSection(name=str(tiny_model_dir), backend="hf", lora={"init_from": str(tmp_path)})
    with pytest.raises(ConfigError, match="model.lora.init_from: no LoRA adapter in"):
        models.load(section)


def test_init_from_an_all_linear_adapter_with_the_same_settings(tiny_model_dir, tmp_path):
    """PEFT saves all-linear expanded into module paths; the same config must still match it."""
    saved = _saved_adapter(tiny_model_dir, tmp_path / "adapter", r=4, alpha=8, target_modules="all-linear")
    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", lora={
        "r": 4, "alpha": 8, "target_modules": "all-linear", "init_from": str(tmp_path / "adapter")}))
    weights = {name: p for name, p in loaded.model.named_parameters() if "lora_" in name}
    assert weights.keys() == saved.keys() and all((weights[n] == saved[n]).all() for n in saved)


def test_init_from_keeps_this_runs_dropout_not_the_saved_one(tiny_model_dir, tmp_path):
    _saved_adapter(tiny_model_dir, tmp_path / "adapter", r=4, alpha=8, dropout=0.3, target_modules=["q_proj"])
    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", lora={
        "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"], "init_from": str(tmp_path / "adapter")}))
    assert loaded.model.peft_config["default"].lora_dropout == 0.0


def test_gradient_checkpointing_toggled_per_rollout_keeps_one_input_grads_hook(tiny_model_dir):
    """TRL turns checkpointing off around every rollout and on again after it; the embeddings keep one hook, and it
    still makes their output require grad (what checkpointing a frozen base with LoRA needs)."""
    import torch

    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", gradient_checkpointing=True))
    model = loaded.model
    embeddings = model.get_input_embeddings()
    for _ in range(3):  # as TRL's unwrap_model_for_generation does for each rollout
        model.gradient_checkpointing_disable()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert len(embeddings._forward_hooks) == 1
    assert embeddings(torch.tensor([[1, 2]])).requires_grad


def test_input_grads_hook_does_nothing_without_gradients_so_decoding_compiles_whole(tiny_model_dir):
    """The hook's ``requires_grad_`` broke the static loop's compiled decode step in two (H200, torch 2.11: dynamo's
    graph-break log); without gradients it must leave the output alone, and the forward must trace as one graph.
    The first check is what fails without the fix here: torch 2.13's dynamo traces the old hook's call too, so the
    fullgraph trace guards against other breaks in the forward, and against the old one on torch 2.11."""
    import torch

    loaded = models.load(ModelSection(name=str(tiny_model_dir), backend="hf", gradient_checkpointing=True))
    model = loaded.model
    model.enable_input_require_grads()  # as TRL does for a PEFT model with checkpointing
    ids = torch.tensor([[1, 2, 3]])
    assert model.get_input_embeddings()(ids).requires_grad  # training still gets gradients into the inputs
    with torch.no_grad():
        assert not model.get_input_embeddings()(ids).requires_grad
    torch._dynamo.reset()
    forward = torch.compile(lambda x: model(input_ids=x).logits, backend="eager", fullgraph=True)
    with torch.inference_mode():
        forward(ids)  # fullgraph: a graph break would raise
