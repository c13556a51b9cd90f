"""inerf.distributed for one process (no torchrun): a world of one where every helper is the identity.

Several processes are tested through the verbs that use them: tests/train/test_distributed_*.py (training)
and tests/pose/test_distributed_benchmark.py (sharded tables), each under torchrun with gloo.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from inerf import distributed
from inerf.distributed import _interleave
from inerf.errors import InerfError


def test_one_process_is_a_world_of_one(monkeypatch):
    for k in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    assert not distributed.launched_by_torchrun()
    with distributed.session("cpu") as dev:
        assert dev == torch.device("cpu") and not distributed.is_distributed()
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
        assert distributed.shard("abc") == ["a", "b", "c"] and distributed.shard_range(7) == (0, 7)
        assert distributed.gather_rows([1, 2]) == distributed.gather_rows([1, 2], to_all=True) == [1, 2]
        assert distributed.main_value(2.5) == 2.5 and distributed.run_on_main(lambda: 3) == 3
        t = torch.tensor([1.0, 2.0])
        assert torch.equal(distributed.mean_over_ranks(t), t)
        module = torch.nn.Linear(2, 2)
        assert distributed.wrap_ddp(module) is module
        distributed.barrier()
    assert distributed.device() is None


def test_launch_detection_and_device_rules(monkeypatch):
    assert distributed.launched_by_torchrun({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert not distributed.launched_by_torchrun({"WORLD_SIZE": "2"})
    monkeypatch.setenv("RANK", "1")  # RANK alone (another launcher's variable) does not make a rank
    assert distributed.is_main()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not distributed.is_main()  # a torchrun process that has left its group still stays quiet
    with pytest.raises(InerfError, match="cuda:LOCAL_RANK"):
        distributed._rank_device("cuda:1", 0, "--device")
    assert distributed._rank_device("cpu", 3, "--device") == torch.device("cpu")


def test_shards_tile_the_items_and_gather_back_in_order(monkeypatch):
    items = list(range(11))
    for w in (1, 2, 3, 4, 16):
        parts, ranges = [], []
        for r in range(w):
            monkeypatch.setattr(distributed, "rank", lambda r=r: r)
            monkeypatch.setattr(distributed, "world_size", lambda w=w: w)
            parts.append([f"row {i}" for i in distributed.shard(items)])
            ranges.append(distributed.shard_range(len(items)))
        assert _interleave(parts) == [f"row {i}" for i in items]
        # Contiguous ranges tile [0, n) in rank order, sizes within one of each other.
        assert ranges[0][0] == 0 and ranges[-1][1] == 11
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    with pytest.raises(ValueError, match="one row per item"):
        _interleave([[1, 2], [3, 4, 5]])


def test_verbs_that_do_not_split_their_work_refuse_torchrun(monkeypatch, capsys):
    from inerf.cli.main import main

    for k, v in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(k, v)
    assert main(["render", "--run", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "inerf render: error: does not run under torchrun (WORLD_SIZE=2)" in err and "train" in err
