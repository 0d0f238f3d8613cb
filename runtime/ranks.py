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
                errors.append(f"{e} {self._short_events(r)}")
        if errors:
            missing = sorted(set(range(self.tp)) - set(ranks))
            head = (f"ranks {', '.join(map(str, missing))} did not run; " if missing else "") + \
                f"{len(errors)} of {len(ranks)} ranks timed out (a rank's stall reaches every rank):"
            raise RuntimeTimeout("\n".join([head] + errors))
        return max(seconds) if timed else None

    def _short_events(self, rank: int) -> str:
        """The events of every rank that this rank's counters lack triggers of, after a timeout."""
        s = self.sessions[rank]
        error = s.error()
        counters = s.d_counters.download(np.uint32, (len(s.bundle.tables["event_initial"]),))
        short = []
        for e in s.plan["events"]:
            if e.get("ranks", 1) > 1:
                need = e["triggers"] * (error.step + 1)
                for i in range(e["size"]):
                    have = int(counters[e["first_slot"] + i])
                    if have < need:
                        short.append(f"'{e['name']}'[{i}] has {have} of its {need} triggers")
        if not short:
            return ""
        return (f"Waiting on the ranks: event {short[0]}" + (f" ({len(short) - 1} more short)" if len(short) > 1 else "")
                + ": a peer rank died, stopped or never started.")

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

    def seconds_per_step(self, tokens, positions, steps: int, repeat: int = 5, warmup: int = 0) -> float:
        """Median seconds per step over `repeat` timed launches of `steps` steps (the slowest rank)."""
        times = []
        for attempt in range(warmup + repeat):
            self.write("tokens", tokens)
            self.write("positions", positions)
            seconds = self.launch(steps, timed=True)
            if attempt >= warmup:
                times.append(seconds / steps)
        return float(np.median(times))

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
