"""The KV-cache benchmark generates exactly the asked number of tokens, with and without the cache."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.bench.decode import kv_cache_table, markdown


def test_kv_cache_table_on_a_tiny_model(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    rows = kv_cache_table(model, tokenizer, batches=[2], lengths=[8, 16], uncached_max_tokens=8)
    assert [(r.batch, r.new_tokens) for r in rows] == [(2, 8), (2, 16)]
    assert rows[0].uncached_s is not None and rows[0].ratio > 0
    assert rows[1].uncached_s is None  # beyond uncached_max_tokens: cached only
    assert rows[0].cached_tokens_per_s == 2 * 8 / rows[0].cached_s
    assert markdown(rows).count("\n") == 3
