"""GPU-only paths (marked `gpu`; skipped without CUDA): compiled rollouts and the Unsloth backend.

Run on the device machine: `python3 -m pytest -m gpu tests/gpu -q` (see docs/benchmarks.md for the set-up).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.bench import train_step as bench_train
from tests.grpo.cli_process import run_grpo

pytestmark = pytest.mark.gpu


def test_static_compiled_decoding_samples_the_same_tokens(tiny_model_dir):
    """The fast rollout setting must not change what is generated: greedy tokens equal eager decoding's."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    prompts = [[{"role": "user", "content": "What is 12 + 7?"}], [{"role": "user", "content": "3 + 4 = 7"}]]
    inputs = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, padding=True, return_tensors="pt",
                                           return_dict=True).to("cuda")
    options = dict(max_new_tokens=16, min_new_tokens=16, do_sample=False, temperature=None, top_p=None, top_k=None)
    eager = model.generate(**inputs, **options)
    compiled = model.generate(**inputs, **options, cache_implementation="static")
    assert torch.equal(eager, compiled)


def test_unsloth_backend_trains_and_saves_an_adapter(tmp_path, tiny_model_dir):
    """Each command in its own process, as a user runs them: Unsloth replaces transformers' Llama forwards for the
    whole process once it loads a model, so an in-process run would change every later test's model (the static
    loop's GPU tests failed after it, 2026-12-01). The held-out evaluation asks for the static loop, which must
    see Unsloth's forwards and decode with ``model.generate`` instead."""
    pytest.importorskip("unsloth")
    folder = bench_train.materialize_shape("smollm2-135m", tmp_path / "models", str(tiny_model_dir))
    # The random model's text decodes to little with the tiny tokenizer, so reward the token ids themselves:
    # a reward with variance gives non-zero advantages, hence a gradient.
    plugin = tmp_path / "id_reward.py"
    plugin.write_text("def id_reward(completions, completion_ids, **kwargs):\n"
                      "    return [float(sum(ids) % 7) for ids in completion_ids]\n")
    config = tmp_path / "unsloth.yaml"
    config.write_text(f"""
run: {{name: unsloth, output_dir: {tmp_path / 'runs'}}}
model: {{name: {folder}, backend: unsloth, dtype: bfloat16, gradient_checkpointing: true}}
data: {{system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 32, eval_size: 4}}}}
rewards: [{{name: math_correctness}}, {{name: "{plugin}:id_reward"}}]
train: {{max_steps: 2, per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 16,
        learning_rate: 0.001, save_steps: 2, report_to: [none]}}
eval: {{before_after: true, num_problems: 4, max_new_tokens: 8, batch_size: 4, decoder: static_loop}}
""")
    _succeeds(run_grpo(tmp_path, "train", str(config), timeout=600))
    run_dir = tmp_path / "runs" / "unsloth"
    assert json.loads((run_dir / "environment.json").read_text())["backend"] == "unsloth"
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert any(tensor.abs().sum() > 0 for name, tensor in saved.items() if "lora_B" in name)
    assert "forward comes from unsloth" in (run_dir / "train.log").read_text()
    _succeeds(run_grpo(tmp_path, "eval", str(run_dir), "--max-new-tokens", "8", timeout=600))


def _succeeds(done) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
