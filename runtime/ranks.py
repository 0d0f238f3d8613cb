"""The ranks of a tensor-parallel bundle (`mpk compile --tp N`), loaded and launched together.

    ranks = RankSet("model-tp2.mpk")            # N GPUs if there are, else N ranks on GPU 0
    ranks.bind_weights(state_dict)             # the whole checkpoint: each rank cuts its slice
    ranks.write("tokens", tokens); ranks.write("positions", positions)
    ranks.launch()                             # every rank's kernel, side by side
    ranks.read("logits", rank=0)

Every rank runs the same program (mpk-shard) in a `loader.Session` of its own:
its weights, KV caches, workspace and peer memory. The peer memory (the
buffers other ranks store into, then the event counters) lies at the same
offsets on every rank, so a rank reaches another's through one byte distance,
which the io buffer `peers` holds: [this rank, distance to rank 0, ...].

With fewer GPUs than ranks the ranks are emulated on one GPU: N kernels, each
on its own stream with the SMs the bundle was scheduled for (compile with
--num-sms SMs/N), the "peer" memory being the same device's. With a GPU per
rank (one process) the ranks run on GPUs 0..N-1 with peer access enabled; a
rank whose peer never signals times out naming the task, the event and itself.
"""

from __future__ import annotations

import ctypes
import os
import time

import numpy as np

from mpk.runtime import bundle as bundles
from mpk.runtime.loader import (DEFAULT_TIMEOUT_S, LoaderError, RuntimeTimeout, Session, _check, _driver,
                                device_properties, gpu_count)


class RankSet:
    def __init__(self, bundle, device: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S, profile: bool = False,
                 emulate: bool | None = None):
        self.bundle = bundle if isinstance(bundle, bundles.Bundle) else bundles.read(bundle)
        self.tp = self.bundle.tp
        self.steps_per_launch = int(self.bundle.kernel.get("steps", 1))
        self.prefill = None          # a tensor-parallel bundle has no prefill program yet
        if self.tp < 2:
            raise LoaderError(f"{self.bundle.path} is not tensor-parallel (compile it with `mpk compile --tp N`); "
                              "load it with mpk.runtime.loader.Session")
        self.emulated = gpu_count() - device < self.tp if emulate is None else emulate
        props = device_properties(device)
        sms = int(self.bundle.kernel["num_sms"])
        if self.emulated and sms * self.tp > props["num_sms"]:
            raise LoaderError(f"{self.tp} ranks of {sms} SMs do not fit side by side on {props['name']} "
                              f"({props['num_sms']} SMs): recompile with --num-sms {props['num_sms'] // self.tp}")
        self.device_name = (f"{self.tp} ranks emulated on {props['name']}" if self.emulated
                            else f"{self.tp} x {props['name']}")
        self.sessions: list[Session] = []
        self.streams = []
        try:
            for rank in range(self.tp):
                gpu = device if self.emulated else device + rank
                self.sessions.append(Session(self.bundle, gpu, timeout_s, profile, rank=rank,
                                             sms=sms if self.emulated else None))
            if not self.emulated:
                self._enable_peer_access()
            driver = _driver()
            for s in self.sessions:
                self._current(s)
                self.streams.append(_check(driver.cuStreamCreate(driver.CUstream_flags.CU_STREAM_NON_BLOCKING),
                                           "cuStreamCreate"))
            bases = [s.peer_memory.ptr for s in self.sessions]
            for rank, s in enumerate(self.sessions):
                self._current(s)
                s.write("peers", np.array([rank] + [b - bases[rank] for b in bases], np.int64))
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        how = "emulated on one GPU" if self.emulated else "one GPU each"
        return f"<RankSet of {self.tp} ranks ({how}) of {self.bundle!r}>"

    # -- memory

    @staticmethod
    def _current(session: Session) -> None:
        _check(_driver().cuCtxSetCurrent(session.context), "cuCtxSetCurrent")

    def _enable_peer_access(self) -> None:
        driver = _driver()
        for s in self.sessions:
            self._current(s)
            for peer in self.sessions:
                if peer is not s:
                    err, = driver.cuCtxEnablePeerAccess(peer.context, 0)
                    if err not in (driver.CUresult.CUDA_SUCCESS,
                                   driver.CUresult.CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED):
                        _check((err,), f"cuCtxEnablePeerAccess (GPU {s.device} -> GPU {peer.device})")

    def bind_weights(self, weights, strict: bool = True) -> None:
        """The whole checkpoint (a state dict by name): each rank binds its slices."""
        for s in self.sessions:
            self._current(s)
            s.bind_weights(weights, strict)

    def write(self, name: str, value) -> None:
        """The same value on every rank (io buffers; a whole weight or KV cache: each rank's slice)."""
        for s in self.sessions:
            self._current(s)
            s.write(name, value)

    def read(self, name: str, rank: int = 0, as_float: bool = True) -> np.ndarray:
        self._current(self.sessions[rank])
        return self.sessions[rank].read(name, as_float)

    # -- launching

    def launch(self, steps: int | None = None, timed: bool = False, ranks=None) -> float | None:
        """Run `steps` decode steps on every rank (or on `ranks` only: the others never
        signal, as if dead), each kernel on its own stream, all side by side. Raises
        RuntimeTimeout naming every rank that gave up; with `timed`, the slowest rank's
        seconds."""
        ranks = list(range(self.tp) if ranks is None else ranks)
        for r in ranks:             # all before any kernel starts: a started rank writes the others'
            self._current(self.sessions[r])
            self.sessions[r].prepare(steps)
        started = {}
        for r in ranks:
            self._current(self.sessions[r])
            started[r] = self.sessions[r].start(steps, stream=self.streams[r], timed=timed, prepared=True)
        self._wait_all(started)
        errors, seconds = [], []
        for r, n in started.items():
            self._current(self.sessions[r])
            try:
                seconds.append(self.sessions[r].finish(n, timed=timed, wait=False))
            except RuntimeTimeout as e:
                errors.append(f"{e} {short_events(self.sessions[r])}")
        if errors:
            missing = sorted(set(range(self.tp)) - set(ranks))
            head = (f"ranks {', '.join(map(str, missing))} did not run; " if missing else "") + \
                f"{len(errors)} of {len(ranks)} ranks timed out (a rank's stall reaches every rank):"
            raise RuntimeTimeout("\n".join([head] + errors))
        return max(seconds) if timed else None

    def _wait_all(self, started: dict) -> None:
        """Every launched rank's stream done; never forever (the kernels' own timeouts end them first)."""
        driver = _driver()
        timeout = self.sessions[0].timeout_s
        deadline = time.monotonic() + 30.0 + 4 * timeout * max(started.values(), default=1)
        pending = set(started)
        while pending:
            for r in list(pending):
                self._current(self.sessions[r])
                err, = driver.cuStreamQuery(self.streams[r])
                if err == driver.CUresult.CUDA_SUCCESS:
                    pending.discard(r)
                elif err != driver.CUresult.CUDA_ERROR_NOT_READY:
                    _check((err,), f"the persistent kernel of rank {r}")
            if pending and time.monotonic() > deadline:
                raise LoaderError(f"the kernels of ranks {sorted(pending)} did not finish and did not report a "
                                  "timeout; the GPU context is unusable now")
            time.sleep(1e-4)

    # Median seconds per step over timed launches: Session's, over this launch (the slowest rank).
    seconds_per_step = Session.seconds_per_step

    def close(self) -> None:
        driver = _driver()
        for s, stream in zip(self.sessions, self.streams):
            self._current(s)
            driver.cuStreamDestroy(stream)
        self.streams = []
        for s in self.sessions:
            s.close()
        self.sessions = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def short_events(session: Session) -> str:
    """After a timeout: the events of every rank that this rank's counters lack triggers of."""
    error = session.error()
    counters = session.d_counters.download(np.uint32, (len(session.bundle.tables["event_initial"]),))
    short = []
    for e in session.plan["events"]:
        if e.get("ranks", 1) > 1:
            need = e["triggers"] * (error.step + 1)
            short += [f"'{e['name']}'[{i}] has {int(counters[e['first_slot'] + i])} of its {need} triggers"
                      for i in range(e["size"]) if counters[e["first_slot"] + i] < need]
    if not short:
        return ""
    more = f" ({len(short) - 1} more short)" if len(short) > 1 else ""
    return f"Waiting on the ranks: event {short[0]}{more}: a peer rank died, stopped or never started."


# ------------------------------------------------------------ one process a rank

IPC_HANDLE_BYTES = 64          # sizeof(CUipcMemHandle)
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of several (torchrun's RANK / WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


class DistributedRank:
    """This process's rank of a tensor-parallel bundle, one process a GPU: started by
    torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or by
    `spawn_ranks`. The ranks exchange their peer memory through torch.distributed's
    TCPStore as CUDA IPC handles (NCCL plays no part); each maps the others' and
    writes the distances into its `peers` buffer. A launch waits at the store until
    every rank has prepared (a started rank writes the others' memory), then each rank
    runs its kernel; a peer that stopped makes every survivor time out naming its task,
    its rank and the event short of triggers (or, before the launch, the ranks that
    never arrived)."""

    def __init__(self, bundle, rank: int | None = None, world: int | None = None, device: int | None = None,
                 store=None, timeout_s: float = DEFAULT_TIMEOUT_S, profile: bool = False, sms: int | None = None):
        self.bundle = bundle if isinstance(bundle, bundles.Bundle) else bundles.read(bundle)
        self.rank = int(os.environ["RANK"]) if rank is None else rank
        self.tp = int(os.environ["WORLD_SIZE"]) if world is None else world
        if self.tp != self.bundle.tp:
            raise LoaderError(f"{self.bundle.path} is for tp={self.bundle.tp}, but {self.tp} processes were started")
        if device is None:                       # fewer GPUs than ranks: processes share them (SMs/N each)
            gpus = max(gpu_count(), 1)
            device = int(os.environ.get("LOCAL_RANK", self.rank)) % gpus
            if gpus < self.tp and sms is None:
                sms = int(self.bundle.kernel["num_sms"])
        self.store = store if store is not None else _store(self.rank, self.tp)
        self.steps_per_launch = int(self.bundle.kernel.get("steps", 1))
        self.prefill, self.launches = None, 0
        self.session = Session(self.bundle, device, timeout_s, profile, rank=self.rank, sms=sms)
        self.device_name = f"rank {self.rank} of {self.tp} on {self.session.device_name}"
        self.timeout_s = timeout_s
        self._opened = []
        try:
            self._map_peers()
        except BaseException:
            self.close()
            raise

    def _map_peers(self) -> None:
        driver = _driver()
        handle = _check(driver.cuIpcGetMemHandle(self.session.peer_memory.ptr), "cuIpcGetMemHandle")
        self.store.set(f"mpk/peer/{self.rank}", ctypes.string_at(int(handle.getPtr()), IPC_HANDLE_BYTES))
        local = self.session.peer_memory.ptr
        bases = []
        for k in range(self.tp):
            raw = self.store.get(f"mpk/peer/{k}")           # waits (the store's timeout) for rank k
            if k == self.rank:
                bases.append(local)
                continue
            theirs = driver.CUipcMemHandle()
            ctypes.memmove(int(theirs.getPtr()), raw, IPC_HANDLE_BYTES)
            ptr = int(_check(driver.cuIpcOpenMemHandle(
                theirs, driver.CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), f"cuIpcOpenMemHandle(rank {k})"))
            self._opened.append(ptr)
            bases.append(ptr)
        self.session.write("peers", np.array([self.rank] + [b - local for b in bases], np.int64))
        self._barrier("mapped")

    def _barrier(self, name: str) -> None:
        """Every rank reached `name` (the store's wait); a LoaderError naming the missing
        ranks after the timeout."""
        from datetime import timedelta
        keys = [f"mpk/at/{name}/{k}" for k in range(self.tp)]
        self.store.set(keys[self.rank], b"1")
        try:
            self.store.wait(keys, timedelta(seconds=max(5.0, 10 * self.timeout_s)))
        except Exception:                   # the store's timeout (a DistStoreError, a RuntimeError)
            missing = [k for k, key in enumerate(keys) if not self.store.check([key])]
            raise LoaderError(f"rank {self.rank} of {self.tp}: ranks {missing} never reached '{name}' "
                              "(a peer process died or hangs)") from None

    # -- the Session interface, for loader.generate

    def bind_weights(self, weights, strict: bool = True) -> None:
        self.session.bind_weights(weights, strict)

    def write(self, name: str, value) -> None:
        self.session.write(name, value)

    def read(self, name: str, as_float: bool = True) -> np.ndarray:
        return self.session.read(name, as_float)

    def launch(self, steps: int | None = None, timed: bool = False) -> float | None:
        steps = self.session.prepare(steps)
        self.launches += 1
        self._barrier(f"launch{self.launches}")
        self.session.start(steps, timed=timed, prepared=True)
        try:
            return self.session.finish(steps, timed=timed)
        except RuntimeTimeout as e:
            raise RuntimeTimeout(f"{e} {short_events(self.session)}") from None

    seconds_per_step = Session.seconds_per_step

    def close(self) -> None:
        driver = _driver()
        for ptr in self._opened:
            driver.cuIpcCloseMemHandle(ptr)
        self._opened = []
        if getattr(self, "session", None) is not None:
            self.session.close()
            self.session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _store(rank: int, world: int):
    """torch.distributed's TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it)."""
    from datetime import timedelta

    from torch.distributed import TCPStore
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise LoaderError(f"rank {rank} of {world}: {', '.join(missing)} not set (torchrun sets them)")
    return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=rank == 0,
                    timeout=timedelta(seconds=60))
