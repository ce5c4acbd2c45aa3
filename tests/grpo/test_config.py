"""Config loading: YAML + overrides, and one clear line naming the key for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.cli import main
from grpo.config import ConfigError, RunConfig, load_config, parse_override

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "quickstart.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_quickstart_loads_with_overrides():
    config = load_config(QUICKSTART, ["train.max_steps=5", "model.lora.r=8", "data.synthetic.operations=[+, '-']"])
    assert config.train.max_steps == 5
    assert config.model.lora.r == 8
    assert config.data.synthetic.operations == ["+", "-"]
    assert config.run_dir == Path("runs/quickstart")


def test_override_into_reward_list_by_index():
    config = load_config(QUICKSTART, ["rewards.0.weight=0.25"])
    assert config.rewards[0].weight == 0.25


def test_defaults_without_file_are_valid():
    assert isinstance(load_config(None), RunConfig)


def test_rollouts_use_generate_unless_the_static_loop_is_asked_for():
    """The default decoder is model.generate, with which vLLM and Unsloth stay allowed; the loop with backend auto
    or hf and a static cache (for what falls back to generate) is accepted."""
    assert load_config(None).train.rollout_decoder == "generate"
    assert load_config(None, ["train.trl.use_vllm=true", "model.backend=unsloth"]).train.rollout_decoder == "generate"
    for backend in ("auto", "hf"):
        config = load_config(None, ["train.rollout_decoder=static_loop", f"model.backend={backend}",
                                    "train.cache_implementation=static", "train.trl.use_vllm=false"])
        assert config.train.rollout_decoder == "static_loop"


@pytest.mark.parametrize(
    ("yaml_text", "overrides", "expected"),
    [
        # a misspelt key names itself, suggests the right one and lists what is allowed
        ("train:\n  num_generationz: 4\n", [], "train.num_generationz: unknown key; did you mean 'num_generations'?"),
        # an unknown section
        ("trainer:\n  max_steps: 4\n", [], "trainer: unknown key; did you mean 'train'?"),
        # a wrong type names the key and the value
        ("train:\n  max_steps: lots\n", [], "train.max_steps: Input should be a valid integer"),
        # a value outside an enumeration lists what is allowed
        ("model:\n  backend: tpu\n", [], "model.backend: Input should be 'auto', 'hf' or 'unsloth'"),
        ("{}\n", ["eval.decoder=fast"], "eval.decoder: Input should be 'generate' or 'static_loop'"),
        ("{}\n", ["train.rollout_decoder=fast"], "train.rollout_decoder: Input should be 'generate' or 'static_loop'"),
        # the static rollout loop takes over model.generate: refused where rollouts do not call it or Unsloth runs
        ("{}\n", ["train.rollout_decoder=static_loop", "train.trl.use_vllm=true"],
         "train.rollout_decoder: static_loop takes over model.generate, which train.trl.use_vllm bypasses"),
        ("{}\n", ["train.rollout_decoder=static_loop", "train.trl.use_transformers_continuous_batching=true"],
         "train.rollout_decoder: static_loop takes over model.generate, which "
         "train.trl.use_transformers_continuous_batching bypasses"),
        ("{}\n", ["train.rollout_decoder=static_loop", "model.backend=unsloth"],
         "train.rollout_decoder: static_loop needs model.backend hf"),
        # num_generations must divide the generation batch; the allowed values are listed
        ("train:\n  per_device_train_batch_size: 8\n  num_generations: 3\n", [],
         "train.num_generations: 3 must divide the generation batch per_device_train_batch_size x processes x "
         "gradient_accumulation_steps = 8 x 1 x 1 = 8; allowed: 2, 4, 8"),
        # GRPO needs at least two generations to form a group
        ("train:\n  num_generations: 1\n", [], "train.num_generations: Input should be greater than or equal to 2"),
        # a missing data file
        ("data:\n  source: file\n  path: nowhere.jsonl\n", [], "data.path: file 'nowhere.jsonl' does not exist"),
        # a missing model folder
        ("model:\n  name: ./no-such-model\n", [], "model.name: path './no-such-model' does not exist"),
        # an unknown reward lists the registered ones
        ("rewards:\n  - name: math_corectness\n", [], "rewards[0]: unknown reward 'math_corectness'; available:"),
        # a reward param that the reward does not take
        ("rewards:\n  - name: repetition_penalty\n    params: {ngram: 3}\n", [], "rewards[0]: repetition_penalty: bad params"),
        # an empty reward list
        ("rewards: []\n", [], "rewards: List should have at least 1 item"),
        # overrides are validated like YAML
        ("{}\n", ["train.learning_rate=-1"], "train.learning_rate: Input should be greater than 0"),
        # an override must look like key=value
        ("{}\n", ["train.max_steps"], "override 'train.max_steps': expected key.sub=value"),
        # an override cannot descend into a value
        ("train:\n  max_steps: 100\n", ["train.max_steps.deep=1"], "train.max_steps: is a value (100), so train.max_steps.deep cannot be set"),
    ],
)
def test_bad_config_gives_one_clear_line(tmp_path, yaml_text, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, yaml_text), overrides)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(expected), message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file .* does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("train.beta=0.04") == (["train", "beta"], 0.04)
    assert parse_override("model.lora.enabled=false") == (["model", "lora", "enabled"], False)
    assert parse_override("run.name=my-run") == (["run", "name"], "my-run")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "CONFIG", "train.num_generationz=4"],
        ["train", "CONFIG", "train.max_steps=abc"],
        ["train", "CONFIG", "data.source=file", "data.path=missing.jsonl"],
        ["train", "CONFIG", "train.per_device_train_batch_size=6", "train.num_generations=4"],
        ["train", "missing-config.yaml"],
    ],
)
def test_cli_exits_2_and_writes_nothing(tmp_path, capsys, argv):
    config = write(tmp_path, f"run:\n  output_dir: {tmp_path / 'runs'}\n")
    code = main([str(config) if a == "CONFIG" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("grpo: error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_cli_refuses_existing_run_dir(tmp_path, capsys):
    existing = tmp_path / "runs" / "taken"
    existing.mkdir(parents=True)
    (existing / "config.yaml").write_text("{}\n")
    config = write(tmp_path, f"run:\n  name: taken\n  output_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(config)]) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert sorted(p.name for p in existing.iterdir()) == ["config.yaml"]


def test_cli_resume_needs_a_run(tmp_path, capsys):
    config = write(tmp_path, f"run:\n  name: fresh\n  output_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(config), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_batch_check_uses_the_global_batch_of_every_launched_process(monkeypatch):
    """TRL's GRPOConfig counts per_device x processes x steps_per_generation: 2 processes x 3 per device = 6 is
    split into groups of 6 even though 3 alone is not."""
    overrides = ["train.per_device_train_batch_size=3", "train.num_generations=6"]
    with pytest.raises(ConfigError, match="3 x 1 x 1 = 3"):
        load_config(None, overrides)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert load_config(None, overrides).train.num_generations == 6


def test_batch_check_follows_trl_steps_per_generation_and_generation_batch_size():
    base = ["train.per_device_train_batch_size=4", "train.num_generations=8"]
    assert load_config(None, base + ["train.trl.steps_per_generation=2"])
    with pytest.raises(ConfigError, match="train.trl.steps_per_generation = 4 x 1 x 3 = 12"):
        load_config(None, base + ["train.trl.steps_per_generation=3"])
    with pytest.raises(ConfigError, match="train.trl.generation_batch_size = 12"):
        load_config(None, base + ["train.trl.generation_batch_size=12"])


def test_dynamic_sampling_is_refused_under_several_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="train.dynamic_sampling.enabled: runs in a single process only"):
        load_config(None, ["train.dynamic_sampling.enabled=true"])
