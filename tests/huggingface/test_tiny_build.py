"""Building a tiny model once behind its version record (the helper both tiny models use), with a
toy build function: built once and reused, rebuilt when the version changes, a failed build leaves
nothing behind, and processes that race end with one complete folder."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from adapters.huggingface.tiny_build import TinyModelBuild


def write_weights(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.txt").write_text("random")


def toy(version: int = 1, build=write_weights) -> TinyModelBuild:
    return TinyModelBuild(build, marker="TINY_TOY.json", version=version, seed=7)


def test_built_once_then_reused(tmp_path):
    folder = tmp_path / "models" / "toy"
    calls: list[Path] = []

    def counted(target: Path) -> None:
        calls.append(target)
        write_weights(target)

    build = toy(build=counted)
    assert build.ensure(folder) == folder
    assert json.loads((folder / "TINY_TOY.json").read_text()) == {"version": 1, "seed": 7}
    assert (folder / "weights.txt").read_text() == "random"
    assert calls[0] != folder and calls[0].parent == folder.parent  # built in a staging folder
    assert build.ensure(folder) == folder
    assert len(calls) == 1
    assert sorted(p.name for p in folder.parent.iterdir()) == ["toy"]  # no staging folder left


def test_another_version_is_rebuilt(tmp_path):
    folder = toy(version=1).ensure(tmp_path / "toy")
    (folder / "stale.txt").write_text("from the old build")
    assert not toy(version=2).is_built(folder)
    toy(version=2).ensure(folder)
    assert json.loads((folder / "TINY_TOY.json").read_text())["version"] == 2
    assert not (folder / "stale.txt").exists()


def test_a_folder_without_its_marker_is_rebuilt_and_rebuild_replaces(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "half-written.bin").write_text("")
    toy().ensure(folder)
    assert not (folder / "half-written.bin").exists() and toy().is_built(folder)
    (folder / "extra").write_text("")
    assert toy().rebuild(folder) == folder
    assert not (folder / "extra").exists() and toy().is_built(folder)


def test_a_failed_build_leaves_nothing(tmp_path):
    def broken(target: Path) -> None:
        write_weights(target)
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):
        toy(build=broken).ensure(tmp_path / "toy")
    assert list(tmp_path.iterdir()) == []


def _race(folder: str) -> None:
    toy().ensure(folder)


def test_processes_that_race_end_with_one_complete_build(tmp_path):
    folder = tmp_path / "toy"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_race, args=(str(folder),)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert toy().is_built(folder) and (folder / "weights.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
