"""Write a merged Llama-architecture model folder as a GGUF file (llama.cpp, Ollama, LM Studio) with the `gguf`
library, following llama.cpp's convert_hf_to_gguf.py for Llama: its tensor names, its q/k row permutation (which
transformers' GGUF loader undoes), 1-D tensors kept in F32, and a GPT-2-style BPE tokenizer with the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from grpo.config import ConfigError

QUANTIZATIONS = ("f16", "q8_0")


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for rotary q/k projections (pairs of halves interleaved per head)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tokenizer_metadata(writer, folder: Path) -> None:
    from transformers import AutoTokenizer

    import gguf

    tokenizer = AutoTokenizer.from_pretrained(folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    if spec["model"]["type"] != "BPE":
        raise ConfigError(f"export --gguf: tokenizer type {spec['model']['type']} is not supported (BPE only)")
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids) | {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([by_id[i] for i in range(len(by_id))])
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(by_id))])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    for name in ("bos", "eos", "pad", "unk"):
        token_id = getattr(tokenizer, f"{name}_token_id")
        if token_id is not None:
            getattr(writer, f"add_{name}_token_id")(token_id)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(folder: Path, out: Path, quantization: str = "f16") -> Path:
    """GGUF of the model saved in ``folder`` (a merged export), tensors in ``quantization`` (f16 or q8_0)."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"export --gguf-type: {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    config = AutoConfig.from_pretrained(folder)
    if config.model_type != "llama":
        raise ConfigError(f"export --gguf: architecture {config.model_type!r} is not supported yet (llama only)")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[quantization]

    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(folder.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantization])
    _tokenizer_metadata(writer, folder)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    state["lm_head.weight"] = model.get_output_embeddings().weight  # written even when tied, as output.weight
    for hf_name, tensor in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        data = tensor.detach().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export --gguf: no GGUF name for tensor {hf_name}")
        if data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
