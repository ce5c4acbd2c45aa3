"""The KV-cache benchmark generates exactly the asked number of tokens, with and without the cache."""

from __future__ import annotations

import pytest
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


def test_kv_cache_table_times_the_static_loop_beside_generate(tiny_model_dir):
    """`grpo bench kv --static-loop`: the loop decodes exactly the asked tokens too (no eos stops it), one decoder
    per batch size serves every length, and its columns are filled; without the option they stay empty."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    rows = kv_cache_table(model, tokenizer, batches=[2], lengths=[4, 12], uncached=False, static_loop=True)
    assert [(r.batch, r.new_tokens) for r in rows] == [(2, 4), (2, 12)]
    assert all(r.loop_s > 0 and r.loop_tokens_per_s == 2 * r.new_tokens / r.loop_s for r in rows)
    assert rows[1].loop_ms_per_decode_step == 1000 * rows[1].loop_s / 12
    table = markdown(rows).splitlines()
    assert len({line.count("|") for line in table}) == 1
    assert _cells(table[-1])[7:10] != ["-", "-", "-"] and _cells(table[-1])[9] == "-"  # loop; no repeated-K/V loop
    assert rows[0].cached_peak_gib is None and rows[0].loop_peak_gib is None  # no CUDA here: no GPU memory figure
    plain = kv_cache_table(model, tokenizer, batches=[2], lengths=[4], uncached=False)
    assert plain[0].loop_s is None and _cells(markdown(plain).splitlines()[-1])[7:10] == ["-", "-", "-"]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_kv_cache_table_times_the_loop_with_repeated_key_value_heads_too(tiny_model_dir):
    """`--loop-repeated-kv`: the grouped-query attention on and off in one run, each in its own column."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    [row] = kv_cache_table(model, tokenizer, batches=[2], lengths=[4], uncached=False, static_loop=True,
                           loop_repeated_kv=True)
    assert row.loop_s > 0 and row.loop_repeated_kv_s > 0
    assert row.to_json()["loop_repeated_kv_ms_per_decode_step"] == 1000 * row.loop_repeated_kv_s / 4
    assert _cells(markdown([row]).splitlines()[-1])[9] != "-"


@pytest.mark.parametrize("unfused", [False, True], ids=["fused", "unfused"])
def test_bench_kv_out_writes_each_row_with_its_derived_figures(tiny_model_dir, tmp_path, capsys, unfused):
    """Each row also says whether the model's projections were fused, as ``grpo eval`` fuses them (``--unfused``:
    the model's own layers, to measure what fusing saves)."""
    import json

    from grpo.cli import main

    out = tmp_path / "kv.json"
    assert main(["bench", "kv", "--model", str(tiny_model_dir), "--batches", "2", "--lengths", "4",
                 "--cached-only", "--static-loop", "--out", str(out)] + (["--unfused"] if unfused else [])) == 0
    [row] = json.loads(out.read_text())
    assert row["fused_projections"] is not unfused
    assert ("projections not fused" if unfused else "projections fused") in capsys.readouterr().out
    assert (row["batch"], row["new_tokens"], row["uncached_s"]) == (2, 4, None)
    assert row["ms_per_decode_step"] == 1000 * row["cached_s"] / 4
    assert row["loop_ms_per_decode_step"] == 1000 * row["loop_s"] / 4 and row["loop_s"] > 0


def test_peak_memory_is_read_after_a_reset_on_cuda(monkeypatch):
    """The CUDA branch (no GPU here): the peak is reset before the measured call and read after it, in GiB."""
    import torch

    from grpo.bench import decode

    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: events.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: events.append("read") or 3 * 2**29)
    assert decode._with_peak(lambda: events.append("measure") or 7) == (7, 1.5)
    assert events == ["reset", "measure", "read"]
