"""The bad-input suite: configs, data files, run directories and environments a user gets wrong.

Each case runs the ``grpo`` command line in-process in a fresh workspace (an existing run, a folder that is not a
run, a repository, data files good and broken) and asserts the exit code, that exactly one ``error:`` line names
the problem, that no traceback is printed, and that no file in the workspace changed (checksums before and after).
Cases fail before any model loads except where the model is the point (LoRA target modules), so the suite is fast.
A few cases also run as real subprocesses, to show what a user's terminal gets, with and without ``--debug``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from grpo.cli import main
from grpo.config import load_config, to_yaml
from grpo.rundir import MARKER
from tests.grpo.cli_process import run_grpo

GOOD_ROWS = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def build_workspace(folder: Path, model_dir: Path) -> None:
    """Everything the cases point at. Nothing here may change when a case fails."""
    (folder / "base.yaml").write_text(f"""
run: {{name: new, output_dir: {folder / 'runs'}, seed: 0}}
model: {{name: {model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data: {{source: synthetic, system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 16, eval_size: 4}}}}
rewards: [{{name: math_correctness}}]
train: {{max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8,
         save_steps: 1, report_to: [none]}}
""")
    for name, checkpoint_state in (("old", {"global_step": 1}), ("torn", None)):
        run = folder / "runs" / name
        (run / "checkpoint-1").mkdir(parents=True)
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
        (run / MARKER).write_text("{}")
        (run / "config.yaml").write_text(to_yaml(load_config(folder / "base.yaml", [f"run.name={name}"])))
        (run / "metrics.jsonl").write_text(jsonl([{"step": 1, "reward": 0.5}]))
        (run / "checkpoint-1" / "adapter_model.safetensors").write_bytes(b"weights")
        if checkpoint_state:
            (run / "checkpoint-1" / "trainer_state.json").write_text(json.dumps(checkpoint_state))
    (folder / "runs" / "notes").mkdir()
    (folder / "runs" / "notes" / "notes.txt").write_text("my notes, not a run\n")
    (folder / "repo" / ".git").mkdir(parents=True)
    (folder / "repo" / "rewards.py").write_text("# someone's code\n")
    (folder / "afile").write_text("a file, not a folder\n")
    data = {
        "good.jsonl": jsonl(GOOD_ROWS),
        "empty.jsonl": "",
        "torn.jsonl": jsonl(GOOD_ROWS[:2]) + '{"question": "What is 1',
        "list.jsonl": jsonl(GOOD_ROWS[:1]) + "[1, 2]\n",
        "null_answer.jsonl": jsonl([GOOD_ROWS[0], {"question": "What is 2?", "answer": None}]),
        "missing_answer.jsonl": jsonl([GOOD_ROWS[0], GOOD_ROWS[1], {"question": "What is 2?"}]),
        "blank_answer.jsonl": jsonl([{"question": "What is 2?", "answer": "  "}]),
        "notes.csv": "question,answer\n",
        "fake.parquet": "this is not parquet\n",
        "bad.yaml": "run: {name: [unclosed\n",
        "list.yaml": "- a\n- b\n",
        "boom.py": "def boom(completions, **kwargs):\n    raise ValueError('boom')\n",
    }
    for name, text in data.items():
        (folder / name).write_text(text)
    (folder / "latin1.jsonl").write_bytes(jsonl(GOOD_ROWS[:1]).encode() + b'{"question": "caf\xe9", "answer": "1"}\n')


def checksums(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # {W}: the workspace, {MODEL}: the tiny model folder
    code: int
    message: str  # must appear in the one error line (stdout for exit 0)
    cwd: str = "{W}"
    env: dict[str, str] = field(default_factory=dict)
    without_gpu: bool = False  # the refusal is for a machine where torch sees no GPU


def config(*overrides: str) -> list[str]:
    return ["config", "{W}/base.yaml", *overrides]


def train(*overrides: str) -> list[str]:
    return ["train", "{W}/base.yaml", *overrides]


FILE = ("data.source=file",)
FINITE = "Input should be a finite number"
CASES = [
    # --- every float setting: finite, and in range where one exists ---------------------------------------
    Case("lr-inf", config("train.learning_rate=.inf"), 2, f"train.learning_rate: {FINITE}"),
    Case("lr-nan", config("train.learning_rate=.nan"), 2, f"train.learning_rate: {FINITE}"),
    Case("lr-minus-inf", config("train.learning_rate=-.inf"), 2, f"train.learning_rate: {FINITE}"),
    Case("lr-zero", config("train.learning_rate=0"), 2, "train.learning_rate: Input should be greater than 0"),
    Case("weight-nan", config("rewards.0.weight=.nan"), 2, f"rewards[0].weight: {FINITE}"),
    Case("weight-minus-inf", config("rewards.0.weight=-.inf"), 2, f"rewards[0].weight: {FINITE}"),
    Case("temperature-inf", config("train.temperature=.inf"), 2, f"train.temperature: {FINITE}"),
    Case("temperature-zero", config("train.temperature=0"), 2, "train.temperature: Input should be greater than 0"),
    Case("top-p-nan", config("train.top_p=.nan"), 2, f"train.top_p: {FINITE}"),
    Case("top-p-zero", config("train.top_p=0"), 2, "train.top_p: Input should be greater than 0"),
    Case("top-p-above-1", config("train.top_p=1.5"), 2, "train.top_p: Input should be less than or equal to 1"),
    Case("warmup-nan", config("train.warmup_ratio=.nan"), 2, f"train.warmup_ratio: {FINITE}"),
    Case("weight-decay-inf", config("train.weight_decay=.inf"), 2, f"train.weight_decay: {FINITE}"),
    Case("grad-norm-nan", config("train.max_grad_norm=.nan"), 2, f"train.max_grad_norm: {FINITE}"),
    Case("beta-inf", config("train.beta=.inf"), 2, f"train.beta: {FINITE}"),
    Case("epsilon-nan", config("train.epsilon=.nan"), 2, f"train.epsilon: {FINITE}"),
    Case("epsilon-high-inf", config("train.epsilon_high=.inf"), 2, f"train.epsilon_high: {FINITE}"),
    Case("dropout-nan", config("model.lora.dropout=.nan"), 2, f"model.lora.dropout: {FINITE}"),
    Case("time-limit-inf", config("train.time_limit_minutes=.inf"), 2, f"train.time_limit_minutes: {FINITE}"),
    Case("merged-lora-without-loop", config("train.rollout_merged_lora=true"), 2,
         "train.rollout_merged_lora: only with train.rollout_decoder static_loop"),
    Case("off-policy-correction-without-loop", config("train.rollout_off_policy_correction=true"), 2,
         "train.rollout_off_policy_correction: only with train.rollout_decoder static_loop"),
    Case("off-policy-correction-with-another-temperature",
         config("train.rollout_decoder=static_loop", "train.rollout_off_policy_correction=true",
                "train.generation_kwargs.temperature=1.5"), 2,
         "train.rollout_off_policy_correction: train.generation_kwargs sets temperature"),
    Case("min-entropy-nan", config("train.collapse_guard.min_entropy=.nan"), 2,
         f"train.collapse_guard.min_entropy: {FINITE}"),
    Case("saturation-inf", config("train.collapse_guard.saturation=.inf"), 2,
         f"train.collapse_guard.saturation: {FINITE}"),
    Case("word-problems-nan", config("data.synthetic.word_problems=.nan"), 2,
         f"data.synthetic.word_problems: {FINITE}"),
    Case("train-lr-inf", train("train.learning_rate=.inf"), 2, f"train.learning_rate: {FINITE}"),
    Case("train-weight-nan", train("rewards.0.weight=.nan"), 2, f"rewards[0].weight: {FINITE}"),
    # --- other settings ---------------------------------------------------------------------------------------
    Case("seed-negative", config("run.seed=-1"), 2, "run.seed: Input should be greater than or equal to 0"),
    Case("seed-too-large", config("run.seed=4294967296"), 2, "run.seed: Input should be less than or equal to"),
    Case("optim-typo", train("train.optim=adamw_tourch"), 2, "train.optim: unknown optimizer 'adamw_tourch'; "
                                                             "did you mean 'adamw_torch'?"),
    Case("generations-divide", train("train.num_generations=3"), 2, "train.num_generations: 3 must divide"),
    Case("unknown-key", config("train.lr=1"), 2, "train.lr: unknown key"),
    Case("run-name-path", config("run.name=../x"), 2, "run.name: String should match pattern"),
    Case("file-without-path", config(*FILE), 2, "data.path: required when data.source is 'file'"),
    Case("file-missing", config(*FILE, "data.path={W}/nope.jsonl"), 2, "nope.jsonl' does not exist"),
    Case("file-csv", config(*FILE, "data.path={W}/notes.csv"), 2, "must end in .jsonl, .json or .parquet"),
    Case("before-after-without-eval-set", train(*FILE, "data.path={W}/good.jsonl", "eval.before_after=true"), 2,
         "eval.before_after: needs a held-out set"),
    Case("periodic-eval-without-eval-set", config(*FILE, "data.path={W}/good.jsonl", "eval.every_n_steps=5"), 2,
         "eval.every_n_steps: needs a held-out set"),
    Case("config-missing", ["config", "{W}/missing.yaml"], 2, "missing.yaml' does not exist"),
    Case("config-bad-yaml", ["config", "{W}/bad.yaml"], 2, "not valid YAML"),
    Case("config-a-list", ["config", "{W}/list.yaml"], 2, "expected a mapping of sections"),
    Case("override-without-value", config("train.max_steps"), 2, "expected key.sub=value"),
    Case("unknown-reward", config("rewards.0.name=no_such_reward"), 2, "rewards[0]"),
    Case("rollout-loop-with-vllm", config("train.rollout_decoder=static_loop", "train.trl.use_vllm=true"), 2,
         "train.rollout_decoder: static_loop takes over model.generate, which train.trl.use_vllm bypasses"),
    Case("model-path-missing", config("model.name=./no-model"), 2, "model.name: path './no-model' does not exist"),
    # --- run directories ------------------------------------------------------------------------------------------
    Case("existing-run", train("run.name=old"), 2, "already exists; pass --resume"),
    Case("overwrite-not-a-run", train("run.name=notes", "--overwrite"), 2, "is not a grpo run directory"),
    Case("overwrite-repository", train("run.output_dir={W}", "run.name=repo", "--overwrite"), 2,
         "refusing to replace"),
    Case("overwrite-parent-of-cwd", train("run.output_dir={W}", "run.name=runs", "--overwrite"), 2,
         "refusing to replace", cwd="{W}/runs/old"),
    Case("overwrite-home", train("run.name=old", "--overwrite"), 2, "refusing to replace",
         env={"HOME": "{W}/runs/old"}),
    Case("overwrite-cwd", train("run.output_dir=.", "run.name=.", "--overwrite"), 2, "run.name"),
    Case("resume-nothing", train("run.name=fresh", "--resume"), 2, "nothing to resume"),
    Case("resume-changed-lr", train("run.name=old", "--resume", "train.learning_rate=0.5"), 2,
         "differs from"),
    Case("resume-and-overwrite", train("--resume", "--overwrite"), 2, "not allowed with argument"),
    Case("allow-changes-without-resume", train("--allow-changes"), 2, "--allow-changes: only with --resume"),
    Case("resume-only-torn", train("run.name=torn", "--resume"), 2, "has no complete checkpoint"),
    Case("resume-finished", train("run.name=old", "--resume", "train.max_steps=1"), 0,
         "finished at step 1; raise train.max_steps above 1 to continue (nothing was changed)"),
    Case("output-dir-is-a-file", train("run.output_dir={W}/afile/runs"), 2, "is not a writable folder"),
    # --- data ------------------------------------------------------------------------------------------------------
    Case("data-empty", train(*FILE, "data.path={W}/empty.jsonl"), 2, "empty.jsonl is empty"),
    Case("data-not-utf8", train(*FILE, "data.path={W}/latin1.jsonl"), 2, "line 2: byte 0xe9 is not UTF-8"),
    Case("data-torn-line", train(*FILE, "data.path={W}/torn.jsonl"), 2, "torn.jsonl line 3: not valid JSON"),
    Case("data-not-object", train(*FILE, "data.path={W}/list.jsonl"), 2, "line 2: expected a JSON object"),
    Case("data-fake-parquet", train(*FILE, "data.path={W}/fake.parquet"), 2, "is not a readable parquet file"),
    Case("data-null-answer", train(*FILE, "data.path={W}/null_answer.jsonl"), 2,
         "data: train row 2: 'answer' is missing or null (1 such rows)"),
    Case("data-missing-answer", train(*FILE, "data.path={W}/missing_answer.jsonl"), 2,
         "data: train row 3: 'answer' is missing or null"),
    Case("data-blank-answer", train(*FILE, "data.path={W}/blank_answer.jsonl"), 2, "'answer' is empty"),
    Case("data-all-invalid-skipped", train(*FILE, "data.path={W}/blank_answer.jsonl", "data.skip_invalid=true"), 2,
         "every train row lacks a question or answer"),
    Case("data-question-column", train(*FILE, "data.path={W}/good.jsonl", "data.question_column=problem"), 2,
         "data.question_column: column 'problem' not in the train data"),
    Case("data-columns-rename", train(*FILE, "data.path={W}/good.jsonl", "data.columns={nope: x}"), 2,
         "data.columns: nope not in the train data"),
    Case("data-eval-empty", train(*FILE, "data.path={W}/good.jsonl", "data.eval_path={W}/empty.jsonl"), 2,
         "data.eval_path: "),
    Case("data-gsm8k-folder", config("data.source=gsm8k", "data.path=./no-gsm8k"), 2, "folder './no-gsm8k'"),
    # --- environment -----------------------------------------------------------------------------------------------
    Case("tracker-missing", train("train.report_to=[wandb]"), 2, "train.report_to: wandb not installed"),
    Case("hub-offline", train("model.name=nobody/no-such-model-xyz"), 2, "model.name: 'nobody/no-such-model-xyz'",
         env={"HF_HUB_OFFLINE": "1"}),
    Case("lora-target-modules", train("model.lora.target_modules=[nope_proj]"), 2,
         "model.lora.target_modules: ['nope_proj'] not found"),
    Case("reward-raises", train("rewards.0.name={W}/boom.py:boom"), 2,
         "reward 'boom' raised on sample 0 at {W}/boom.py:2 in boom: ValueError: boom"),
    Case("eval-temperature-nan", ["eval", "{MODEL}", "--temperature", "nan"], 2, "--temperature: nan"),
    Case("eval-top-p-zero", ["eval", "{MODEL}", "--top-p", "0"], 2, "--top-p: 0.0 must be in (0, 1]"),
    Case("eval-runner-without-loop", ["eval", "{MODEL}", "--loop-runner", "graph"], 2,
         "--loop-runner: only with --decoder static_loop"),
    Case("eval-graph-without-cuda", ["eval", "{MODEL}", "--decoder", "static_loop", "--loop-runner", "graph"], 2,
         "--loop-runner graph: needs CUDA", without_gpu=True),
    Case("eval-nothing", ["eval"], 2, "give a model, run directory or checkpoint"),
    Case("plot-not-a-run", ["plot", "{W}/runs/notes"], 2, "is neither a run directory"),
    Case("export-nothing", ["export", "{W}/runs/old"], 2, "say what to write"),
]


def _fill(text: str, workspace: Path, model_dir: Path) -> str:
    return text.replace("{W}", str(workspace)).replace("{MODEL}", str(model_dir))


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Path:
    build_workspace(tmp_path, tiny_model_dir)
    return tmp_path


def test_at_least_fifty_cases_with_unique_ids():
    assert len(CASES) >= 50 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case, workspace, tiny_model_dir, monkeypatch, capsys):
    if case.without_gpu and torch.cuda.is_available():
        pytest.skip("this refusal is for machines without a GPU")
    fill = lambda text: _fill(text, workspace, tiny_model_dir)  # noqa: E731
    monkeypatch.chdir(fill(case.cwd))
    for key, value in case.env.items():
        monkeypatch.setenv(key, fill(value))
    if "HF_HUB_OFFLINE" in case.env:  # huggingface_hub reads the variable once, at import
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    before = checksums(workspace)
    try:
        code = main([fill(arg) for arg in case.argv])
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    out, err = capsys.readouterr()
    assert code == case.code, err
    assert "Traceback" not in out + err
    if case.code == 0:
        assert fill(case.message) in out
    else:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1, err
        assert fill(case.message) in errors[0], errors[0]
    assert checksums(workspace) == before


def test_a_terminal_sees_one_line_and_debug_shows_the_traceback(workspace, tiny_model_dir):
    """In a real process: a config mistake and a runtime failure are one line; --debug or GRPO_DEBUG=1 adds
    the traceback. The runtime failure: evaluating a run whose adapter folder holds no adapter_config.json (PEFT
    raises while loading it)."""
    config_error = run_grpo(workspace, "config", str(workspace / "base.yaml"), "train.learning_rate=.inf")
    assert config_error.returncode == 2
    assert config_error.stderr.strip() == f"grpo: error: train.learning_rate: {FINITE} (got inf)"
    before = checksums(workspace)
    runtime = run_grpo(workspace, "eval", str(workspace / "runs" / "old"), "--limit", "1")
    assert runtime.returncode == 1 and "Traceback" not in runtime.stderr
    errors = [line for line in runtime.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Can't find 'adapter_config.json'" in errors[0] and "--debug" in errors[0], errors
    for flag, env in ((["--debug"], None), ([], {"GRPO_DEBUG": "1"})):
        debug = run_grpo(workspace, "eval", str(workspace / "runs" / "old"), "--limit", "1", *flag, env=env)
        assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert checksums(workspace) == before
