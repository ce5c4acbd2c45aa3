"""Shared fixtures: a tiny random chat model built in the test session (no hub, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "You are a calculator. What is 12 + 7? The answer is 19.",
    "Solve the math problem. Think step by step, then finish with: The answer is N.",
    "<think> 3 + 4 = 7 </think> <answer> 7 </answer> How many apples does Ava have now?",
    "0 1 2 3 4 5 6 7 8 9 + - * = . , ? ! #### boxed frac",
]


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a ChatML byte-level BPE tokenizer, saved as a plain HF folder."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 20, vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    """GSM8K in the layout `data.source=gsm8k` reads: the full copy beside the project (../shared/data/gsm8k) when
    there is one, else the 50-row sample committed in tests/fixtures, so the suite passes in any clone."""
    full = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
    return full if (full / "test.jsonl").is_file() else Path(__file__).resolve().parent / "fixtures" / "gsm8k"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: they run on the GPU machine (see docs/benchmarks.md), and are skipped here."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
