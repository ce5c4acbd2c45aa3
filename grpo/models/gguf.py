"""Convert a GGUF checkpoint into a plain Hugging Face folder that the Trainer can train.

Why a conversion and not ``from_pretrained(gguf_file=...)`` at train time: a model loaded that way keeps
``config.quantization_config = GgufConfig`` and an ``hf_quantizer``, and ``Trainer`` refuses to fine-tune a
model flagged as quantized. transformers de-quantizes the tensors to float on load, so we load once, copy the
weights into a freshly built model whose config carries no quantization, and save that folder.

The converted SmolLM2 tokenizer also reports ``eos=<|im_start|>`` and no pad token, while chat turns end with
``<|im_end|>``: a model that never sees its eos would generate to the length limit. :func:`fix_chat_special_tokens`
repairs that and :func:`check_chat_tokens` verifies it after conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

# Written last into a converted folder: its presence means the conversion finished.
COMPLETE_MARKER = "grpo_conversion.json"


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def fix_chat_special_tokens(tokenizer, model_config, generation_config) -> None:
    """Make eos the token that ends a chat turn, and give the tokenizer a pad token.

    Chat templates of the ChatML family end each turn with ``<|im_end|>``; GGUF metadata often names another
    token as eos. We follow what the original Hugging Face release of such models sets: eos = pad = ``<|im_end|>``.
    """
    vocab = tokenizer.get_vocab()
    template = tokenizer.chat_template or ""
    if "<|im_end|>" in vocab and "<|im_end|>" in template:
        tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for config in (model_config, generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        if tokenizer.bos_token_id is not None:
            config.bos_token_id = tokenizer.bos_token_id


def check_chat_tokens(tokenizer) -> None:
    """Raise when generation would not stop at the end of an assistant turn."""
    if tokenizer.chat_template is None:
        raise ValueError("converted tokenizer has no chat template")
    if tokenizer.pad_token_id is None:
        raise ValueError("converted tokenizer has no pad token")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}], tokenize=False
    )
    turn_end = rendered.rstrip().split("2")[-1]
    if tokenizer.eos_token not in turn_end:
        raise ValueError(
            f"eos token {tokenizer.eos_token!r} does not end an assistant turn in the chat template "
            f"(turn ends with {turn_end!r})"
        )


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Convert ``gguf_path`` into a trainable HF folder at ``out_dir`` (atomic: complete folder or none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    if (out_dir / COMPLETE_MARKER).exists():
        return out_dir
    print(f"[grpo] converting {gguf_path.name} to a Hugging Face folder (once; cached in {out_dir}) ...", flush=True)
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)

    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    del quantized

    fix_chat_special_tokens(tokenizer, plain.config, plain.generation_config)
    tokenizer.clean_up_tokenization_spaces = False  # BPE: the WordPiece clean-up would strip spaces before "."
    check_chat_tokens(tokenizer)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared like any HF folder
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / COMPLETE_MARKER).write_text(
            json.dumps({"source": gguf_path.name, "sha256": sha256_of(gguf_path)}, indent=2)
        )
        if out_dir.exists():  # an earlier, interrupted conversion
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"[grpo] converted model saved to {out_dir}", flush=True)
    return out_dir
