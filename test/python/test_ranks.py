"""The rendezvous of one process a rank (mpk.runtime.ranks.DistributedRank) on a real
torch.distributed TCPStore, without a GPU: ranks meet before a launch, and a rank
alone times out naming the ranks that never came."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest

from mpk.runtime.loader import LoaderError
from mpk.runtime.ranks import DistributedRank

TCPStore = pytest.importorskip("torch.distributed").TCPStore


def _ranks(n: int, timeout_s: float) -> list[DistributedRank]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stores = [TCPStore("127.0.0.1", port, n, is_master=r == 0, timeout=timedelta(seconds=10),
                       wait_for_workers=False) for r in range(n)]
    ranks = []
    for r, store in enumerate(stores):      # the barrier's state only: no GPU session
        rank = DistributedRank.__new__(DistributedRank)
        rank.rank, rank.tp, rank.store, rank.timeout_s = r, n, store, 0.1
        ranks.append(rank)
    return ranks


def test_ranks_meet_at_the_store():
    ranks = _ranks(3, 0.1)
    threads = [threading.Thread(target=r._barrier, args=("launch1",)) for r in ranks[1:]]
    for t in threads:
        t.start()
    ranks[0]._barrier("launch1")
    for t in threads:
        t.join()


def test_a_rank_that_never_comes_is_named():
    ranks = _ranks(3, 0.1)
    errors = []

    def rank2():
        try:
            ranks[2]._barrier("launch1")
        except LoaderError as e:
            errors.append(str(e))
    other = threading.Thread(target=rank2)
    other.start()
    with pytest.raises(LoaderError, match=r"rank 0 of 3: ranks \[1\] never reached 'launch1'"):
        ranks[0]._barrier("launch1")
    other.join()
    assert errors and "rank 2 of 3: ranks [1] never reached 'launch1'" in errors[0]
