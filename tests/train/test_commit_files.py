"""``commit_files`` / ``recover_files``: a group of files replaced together survives an interruption at any
point (here: every rename, and the journal) as the whole old group or the whole new one."""

from __future__ import annotations

import os

import pytest

from inerf.train import checkpoint
from inerf.train.checkpoint import commit_files, recover_files

NAMES = ["a", "b", "c"]
JOURNAL = "saving"


class Interrupted(Exception):
    pass


def _writers(tag: str) -> dict:
    def writer(name):
        return lambda p: p.write_text(f"{name}-{tag}")

    return {n: writer(n) for n in NAMES}


def _contents(folder) -> list[str]:
    return [(folder / n).read_text() for n in NAMES]


@pytest.mark.parametrize("fail_at", range(len(NAMES) + 2))
def test_interrupted_commit_recovers_whole(tmp_path, monkeypatch, fail_at):
    """Interrupt the k-th ``os.replace`` (k = 0: the journal's own atomic write; 1..3: each file's rename;
    4: none, the commit completes) and recover: every file is whole, all old or all new."""
    commit_files(tmp_path, _writers("old"), JOURNAL)
    assert _contents(tmp_path) == ["a-old", "b-old", "c-old"] and not (tmp_path / JOURNAL).exists()

    calls = {"n": 0}
    real_replace = os.replace

    def replace(src, dst):
        if calls["n"] == fail_at:
            raise Interrupted
        calls["n"] += 1
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    if fail_at <= len(NAMES):
        with pytest.raises(Interrupted):
            commit_files(tmp_path, _writers("new"), JOURNAL)
    else:
        commit_files(tmp_path, _writers("new"), JOURNAL)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)

    # Before recovery every file is whole already (each rename is atomic) ...
    assert all(c.endswith(("-old", "-new")) for c in _contents(tmp_path))
    # ... and recovery makes the group consistent: the journal was written (fail_at >= 1) -> the new group.
    rolled = recover_files(tmp_path, NAMES, JOURNAL)
    expected = "old" if fail_at == 0 else "new"
    assert _contents(tmp_path) == [f"{n}-{expected}" for n in NAMES]
    assert rolled == (1 <= fail_at <= len(NAMES))
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / JOURNAL).exists()


def test_writer_failure_leaves_the_old_group(tmp_path):
    commit_files(tmp_path, _writers("old"), JOURNAL)
    writers = _writers("new")

    def broken(path):
        path.write_text("half")
        raise Interrupted

    writers["b"] = broken
    with pytest.raises(Interrupted):
        commit_files(tmp_path, writers, JOURNAL)
    assert not recover_files(tmp_path, NAMES, JOURNAL)
    assert _contents(tmp_path) == ["a-old", "b-old", "c-old"] and not list(tmp_path.glob("*.tmp"))
