"""grpo.eval.split_kv_attention on a CPU: the kernels themselves, run by Triton's interpreter, against SDPA over
repeated key/value heads (float32 and float16; the interpreter's bfloat16 products are wrong, so bfloat16 is
checked on the GPU, tests/gpu/test_split_kv_attention_cuda.py), and which calls the kernels take."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grpo.eval import split_kv_attention
from grpo.eval.grouped_attention import grouped_decode_attention, split_kv_decode_attention
from tests.grpo.eval.split_kv_cases import CASES, padding_mask

needs_triton = pytest.mark.skipif(split_kv_attention.triton is None,
                                  reason="Triton is not installed (the dev extra installs it on Linux x86-64)")
ROOT = Path(__file__).resolve().parents[3]


@needs_triton
@pytest.mark.parametrize("max_splits", [split_kv_attention.MAX_SPLITS, 1], ids=["shipped-slices", "one-slice"])
def test_interpreted_kernels_equal_sdpa_over_repeated_heads(max_splits):
    """With the shipped settings (slices combined by the second kernel, but for the caches of one block and the
    batch that fills the GPU) and with one slice per key/value head everywhere (the first kernel writes the output;
    the 2,600-slot case loops over 21 blocks)."""
    done = subprocess.run([sys.executable, "-m", "tests.grpo.eval.split_kv_cases", "cpu", str(max_splits),
                           "float32", "float16"],
                          cwd=ROOT, env=os.environ | {"TRITON_INTERPRET": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 2 * len(CASES)
    for result in results:
        assert result["supported"] and result["shape_ok"], result
        assert result["max_error"] < (1e-5 if result["dtype"] == "torch.float32" else 2e-3), result


def _inputs(query_length=1, head_dim=64, mask_dtype=torch.bool):
    query = torch.randn(2, 9, query_length, head_dim)
    key, value = torch.randn(2, 3, 40, head_dim), torch.randn(2, 3, 40, head_dim)
    mask = padding_mask(2, 40, "cpu")
    return query, key, value, mask if mask_dtype == torch.bool else torch.zeros(mask.shape, dtype=mask_dtype)


@needs_triton
def test_supports_one_token_steps_with_a_boolean_padding_mask(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # CPU tensors count as a device Triton runs on
    assert split_kv_attention.supports(*_inputs())
    assert not split_kv_attention.supports(*_inputs(query_length=2))  # prefill
    assert not split_kv_attention.supports(*_inputs(head_dim=320))
    assert not split_kv_attention.supports(*_inputs(mask_dtype=torch.float32))  # additive masks
    query, key, value, _ = _inputs()
    assert not split_kv_attention.supports(query, key, value, None)
    assert not split_kv_attention.supports(query, key.transpose(-1, -2).contiguous().transpose(-1, -2), value,
                                           padding_mask(2, 40, "cpu"))  # dims not contiguous
    huge = torch.empty(2**16, 3, 2**12, 64, device="meta")  # 2**34 elements: 32-bit offsets would overflow
    assert not split_kv_attention.supports(torch.empty(2**16, 9, 1, 64, device="meta"), huge, huge,
                                           torch.ones(2**16, 1, 1, 2**12, dtype=torch.bool, device="meta"))
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not split_kv_attention.supports(*_inputs())  # a CPU without the interpreter


def test_cpu_calls_keep_the_grouped_sdpa_attention():
    """Off CUDA the split-KV attention function is the grouped SDPA one, exactly (same kernels, same numbers)."""
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True)
    query, key, value, mask = _inputs()
    expected, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.125)
    got, _ = split_kv_decode_attention(module, query, key, value, mask, scaling=0.125)
    assert torch.equal(got, expected)


@needs_triton
def test_probe_accepts_kernels_that_agree_with_sdpa():
    """Under the interpreter the kernels run on the CPU and agree: no reason, for SmolLM2's heads in float32 and a
    small head in float16."""
    probe = ("import torch; from grpo.eval.split_kv_attention import unusable_reason; cpu = torch.device('cpu'); "
             "print(unusable_reason(cpu, torch.float32, 64, 3), unusable_reason(cpu, torch.float16, 8, 2))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=os.environ | {"TRITON_INTERPRET": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "None"]


@pytest.fixture
def fresh_probe():
    split_kv_attention.unusable_reason.cache_clear()
    yield
    split_kv_attention.unusable_reason.cache_clear()


@needs_triton
def test_probe_names_kernels_that_cannot_run(monkeypatch, fresh_probe):
    """Compiled (not interpreted) kernels cannot launch without a GPU: the reason names the error instead of
    raising it."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # supports() passes CPU tensors; the kernels were built compiled
    reason = split_kv_attention.unusable_reason(torch.device("cpu"), torch.float32, 64, 3)
    assert reason is not None and reason.startswith("they failed on cpu: ")


@needs_triton
def test_probe_names_kernels_that_compute_wrongly(monkeypatch, fresh_probe):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(split_kv_attention, "decode_attention",
                        lambda query, *args: torch.zeros(query.shape[0], 1, query.shape[1], query.shape[3]))
    reason = split_kv_attention.unusable_reason(torch.device("cpu"), torch.float32, 64, 3)
    assert reason is not None and reason.startswith("they differ from SDPA by ")


def test_probe_without_triton_says_so(monkeypatch, fresh_probe):
    monkeypatch.setattr(split_kv_attention, "triton", None)
    assert split_kv_attention.unusable_reason(torch.device("cpu"), torch.float32, 64, 3) == "Triton is not installed"
