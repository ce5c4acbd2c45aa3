"""logging.completions_every: sampled prompts, completions and each reward land in completions.jsonl."""

from __future__ import annotations

import json

from grpo.cli import main


def test_completions_written_every_n_steps(tmp_path, tiny_model_dir):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
run: {{name: samples, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}}}
data: {{system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 8, eval_size: 2}}}}
train: {{max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 6, save_steps: 2}}
logging: {{completions_every: 2}}
""")
    assert main(["train", str(config)]) == 0
    records = [json.loads(line) for line in (tmp_path / "runs" / "samples" / "completions.jsonl").read_text()
               .splitlines()]
    assert [r["step"] for r in records] == [2] * 4  # step 1 is not a multiple of 2; 4 completions a step
    for record in records:
        assert record["prompt"][-1]["role"] == "user" and "What is" in record["prompt"][-1]["content"]
        assert isinstance(record["completion"], str)
        assert set(record["rewards"]) == {"math_correctness", "answer_line"}
        assert isinstance(record["advantage"], float)
