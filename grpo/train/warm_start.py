"""Warm start by rejection sampling (STaR / RFT): before GRPO, the policy learns from its own verified answers.

Why: GRPO learns only from groups that hold both a right and a wrong answer. On problems the model solves rarely
(pass@8 well above its greedy accuracy, but most groups of 8 all wrong) almost every group is flat and nothing is
learned. Sampling many answers per training problem, keeping the ones the verifier accepts and fine-tuning on them
moves probability towards those answers before GRPO starts. Nothing beyond final answers is used (no
human-written solutions), so the pipeline stays as label-free as GRPO itself.

Sampling and scoring reuse the evaluation's batched generation and scorer; the fine-tuning is TRL's
``SFTTrainer`` on prompt-completion pairs (loss on the completion only), applied to the same LoRA adapter that
GRPO then trains.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from grpo import rundir
from grpo.config import RunConfig
from grpo.eval.evaluate import Scorer, SampleResult, score
from grpo.eval.generation import SamplingParams, generate


def verified_examples(rows: list[dict[str, Any]], results: list[SampleResult], keep_per_prompt: int) -> list[dict]:
    """Prompt-completion pairs from the answers judged right (``correct is True``; undecided ones are not kept)
    that finished before the token limit, at most ``keep_per_prompt`` distinct ones per prompt, in row order."""
    by_id = {str(row["id"]): row for row in rows}
    kept: dict[str, list[str]] = {}
    for result in results:
        texts = kept.setdefault(result.id, [])
        if result.correct is True and not result.truncated and result.completion.strip() \
                and result.completion not in texts and len(texts) < keep_per_prompt:
            texts.append(result.completion)
    return [{"id": row_id, "prompt": by_id[row_id]["prompt"],
             "completion": [{"role": "assistant", "content": text}]}
            for row_id, texts in kept.items() for text in texts]


def sample_and_verify(model, tokenizer, rows: list[dict[str, Any]], scorer: Scorer, config: RunConfig):
    """``samples_per_prompt`` sampled answers for each row, scored: (results, summary counts)."""
    settings = config.train.warm_start
    params = SamplingParams(max_new_tokens=settings.max_new_tokens or config.train.max_completion_length,
                            do_sample=True, temperature=settings.temperature, num_samples=settings.samples_per_prompt,
                            seed=config.run.seed)
    completions = generate(model, tokenizer, [row["prompt"] for row in rows], params, settings.sampling_batch_size,
                           "warm start: sampling")
    results = score(rows, completions, scorer)
    solved = {r.id for r in results if r.correct is True}
    counts = {"prompts": len(rows), "samples_per_prompt": settings.samples_per_prompt,
              "temperature": settings.temperature, "samples": len(results),
              "correct_samples": sum(r.correct is True for r in results),
              "prompts_with_a_correct_sample": len(solved)}
    return results, counts


def fine_tune(model, tokenizer, examples: list[dict], config: RunConfig, output_dir: Path) -> dict[str, Any]:
    """Supervised fine-tuning of the model's trainable (LoRA) weights on the verified examples, in place."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from grpo.models.loading import cuda_available, torch_dtype

    settings = config.train.warm_start
    dtype = str(torch_dtype(config.model)).removeprefix("torch.")
    args = SFTConfig(output_dir=str(output_dir), num_train_epochs=settings.epochs,
                     learning_rate=settings.learning_rate, lr_scheduler_type="constant",
                     per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=1,
                     logging_steps=1, save_strategy="no", report_to="none", seed=config.run.seed,
                     bf16=dtype == "bfloat16", fp16=dtype == "float16", use_cpu=not cuda_available(),
                     dataloader_num_workers=0, disable_tqdm=True)
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # transformers prints every log dict when the progress bar is off
    output = trainer.train()
    return {"examples": len(examples), "epochs": settings.epochs, "steps": output.global_step,
            "train_loss": output.training_loss,
            "first_loss": next((log["loss"] for log in trainer.state.log_history if "loss" in log), None)}


def run(model, tokenizer, train_rows, scorer: Scorer, config: RunConfig, run_dir: Path, say=print) -> dict:
    """Sample, verify, fine-tune; writes ``warm_start.json`` and the kept examples into the run directory."""
    settings = config.train.warm_start
    rows = train_rows.select(range(min(settings.prompts, len(train_rows)))).to_list()
    results, counts = sample_and_verify(model, tokenizer, rows, scorer, config)
    examples = verified_examples(rows, results, settings.keep_per_prompt)
    say(f"warm start: {counts['correct_samples']} of {counts['samples']} sampled answers right; "
        f"{counts['prompts_with_a_correct_sample']} of {counts['prompts']} prompts solved at least once; "
        f"fine-tuning on {len(examples)}")
    record: dict[str, Any] = {"sampling": counts, "kept_examples": len(examples)}
    if examples:
        scratch = run_dir / ".warm_start"
        try:
            record["fine_tuning"] = fine_tune(model, tokenizer, examples, config, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        say(f"warm start: fine-tuned {record['fine_tuning']['steps']} steps, mean loss "
            f"{record['fine_tuning']['train_loss']:.3f}")
    else:
        say("warm start: no verified answer to learn from; GRPO starts from the base model")
    rundir.write_atomic(run_dir / rundir.WARM_START_JSON, json.dumps(record, indent=2))
    rundir.write_atomic(run_dir / rundir.WARM_START_EXAMPLES,
                        "".join(json.dumps(e) + "\n" for e in examples))
    return record
