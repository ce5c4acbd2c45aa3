"""Run-directory files: ownership marker, atomic writes with ordinary modes, folders swapped into place."""

from __future__ import annotations

import os
import stat

import pytest

from grpo.train.checkpoints import cut_metrics, newest_complete
from grpo.config import ConfigError, load_config
from grpo.rundir import MARKER, check_target, create, replace_dir, write_atomic


def test_write_atomic_uses_the_umask_mode_and_leaves_no_temporary(tmp_path):
    write_atomic(tmp_path / "a.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_create_writes_the_marker_and_a_failed_replacement_restores_the_old_run(tmp_path, monkeypatch):
    config = load_config(None, [f"run.output_dir={tmp_path}", "run.name=r"])
    create(config.run_dir, config, {}, overwrite=False)
    assert (config.run_dir / MARKER).is_file()
    (config.run_dir / "notes.txt").write_text("old")
    from grpo import rundir

    def broken(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(rundir, "write_atomic", broken)
    with pytest.raises(OSError):
        create(config.run_dir, config, {}, overwrite=True)
    assert (config.run_dir / "notes.txt").read_text() == "old" and (config.run_dir / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_overwrite_refuses_a_folder_without_the_marker(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a grpo run directory"):
        check_target(tmp_path / "x", resume=False, overwrite=True)


def test_replace_dir_swaps_a_complete_folder_in(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "old").write_text("old")
    (tmp_path / ".adapter.partial").mkdir()
    (tmp_path / ".adapter.partial" / "new").write_text("new")
    replace_dir(tmp_path / ".adapter.partial", tmp_path / "adapter")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    assert [p.name for p in (tmp_path / "adapter").iterdir()] == ["new"]


def test_newest_complete_skips_torn_checkpoints_and_says_so(tmp_path):
    for step, state in ((1, '{"global_step": 1}'), (2, '{"global_step": 2}'), (3, '{"global_st'), (4, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    said = []
    assert newest_complete(tmp_path, say=said.append).name == "checkpoint-2"
    assert [line.split(":")[0] for line in said] == ["skipping checkpoint-4", "skipping checkpoint-3"]
    assert (tmp_path / "checkpoint-4").is_dir()  # left for training to save over


def test_cut_metrics_drops_later_steps_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2}\n{"step": 3, "rew')
    assert cut_metrics(path, 1, write_atomic) == 2
    assert path.read_text() == '{"step": 0}\n{"step": 1}\n'
