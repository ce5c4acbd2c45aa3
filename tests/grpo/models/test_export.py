"""grpo export: the merged folder loads with plain transformers and generates what base + adapter generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.cli import main
from grpo.config import load_config, to_yaml


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    """A run directory as `grpo train` leaves it: config.yaml naming the base, a non-trivial adapter in adapter/."""
    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_text(to_yaml(load_config(None, [f"model.name={tiny_model_dir}"])))
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(run / "adapter")
    return run


def greedy(model, tokenizer, text: str = "What is 12 + 7?") -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    output = model.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    return output[0, ids.shape[1]:].tolist()


def test_merged_model_loads_plainly_and_matches_base_plus_adapter(run_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "merged"
    assert main(["export", str(run_dir), "--merged", str(out)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert merged.dtype == AutoModelForCausalLM.from_pretrained(tiny_model_dir).dtype
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and (out / "generation_config.json").is_file()
    base_tokens = greedy(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
    reference_tokens = greedy(reference, tokenizer)
    assert reference_tokens != base_tokens  # the adapter matters, so a merge that dropped it would fail below
    assert greedy(merged, tokenizer) == reference_tokens


def test_export_of_a_model_without_adapter_is_one_line(tiny_model_dir, tmp_path, capsys):
    assert main(["export", str(tiny_model_dir), "--merged", str(tmp_path / "m")]) == 2
    assert "is not a run directory, checkpoint or adapter folder" in capsys.readouterr().err


@pytest.mark.parametrize(("kind", "tolerance"), [("f16", 5e-3), ("q8_0", 2e-2)])
def test_gguf_round_trip_through_transformers_gives_the_merged_models_tokens(run_dir, tmp_path, kind, tolerance):
    merged_dir, gguf_file = tmp_path / "merged", tmp_path / f"model-{kind}.gguf"
    assert main(["export", str(run_dir), "--merged", str(merged_dir), "--gguf", str(gguf_file),
                 "--gguf-type", kind]) == 0
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf_file.name)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_file.name)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(merged_dir).get_vocab()
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(merged_dir).chat_template
    ids = torch.tensor([list(range(5, 25))])
    with torch.no_grad():  # a wrong q/k permutation or tensor name would move logits far beyond the rounding
        difference = (loaded(ids).logits - merged(ids).logits).abs().max().item()
    assert difference < tolerance
    assert greedy(loaded, tokenizer) == greedy(merged, tokenizer)


def test_push_to_hub_creates_a_private_repo_and_uploads_the_merged_folder_with_a_card(run_dir, monkeypatch):
    """Everything up to the upload: the network call itself is replaced (no Hub access here)."""
    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls["create"] = (repo_id, private, exist_ok)
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, folder_path, repo_id, commit_message):
            folder = Path(folder_path)
            calls["files"] = sorted(p.name for p in folder.iterdir())
            calls["card"] = (folder / "README.md").read_text()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert main(["export", str(run_dir), "--push-to-hub", "me/tiny-grpo"]) == 0
    assert calls["create"] == ("me/tiny-grpo", True, True)
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(calls["files"])
    config = load_config(run_dir / "config.yaml")
    assert f"base_model: {config.model.name}" in calls["card"]
    assert all(f"`{spec.name}`" in calls["card"] for spec in config.rewards)
    assert config.data.source in calls["card"]


def test_export_needs_an_output(run_dir, capsys):
    assert main(["export", str(run_dir)]) == 2
    assert "--merged DIR, --gguf FILE and/or --push-to-hub REPO" in capsys.readouterr().err
