"""What both engines share: the worker side of a batch, and the driver's ordered, windowed map
with crash isolation (the contract of ``executor._map``)."""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections import deque

#: environment the driver forwards to its workers (the test hook of executor._fault_injection);
#: a worker takes it per batch, so a long-lived worker never keeps a value the driver dropped
FORWARDED_ENV = ("QRATE_FAULT_INJECT",)

# -- worker side ----------------------------------------------------------------------------------
_LOCK = threading.Lock()
_STATE: dict = {"token": None}


def run_batch(fn, items: list, init_arg, token: str, env: dict) -> list:
    """Run ``fn`` over ``items`` in this worker process, after ``executor._init_worker_inline``
    once per worker per ``token`` (a digest of ``init_arg``: the vision models a pass loads stay
    loaded for the next batch). One batch at a time per process (the executor's per-worker state
    is one global): run workers with one thread each (docs/distributed.md)."""
    from qrate import executor

    with _LOCK:
        os.environ["QRATE_ENGINE_WORKER"] = "1"
        for k in FORWARDED_ENV:
            if env.get(k) is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = env[k]
        if _STATE["token"] != token:
            executor._init_worker_inline(init_arg)
            _STATE["token"] = token
        return [fn(x) for x in items]


# -- driver side ----------------------------------------------------------------------------------
class WorkerDied(Exception):
    """A task's worker process died while running it (a native crash, an OOM kill)."""


def token_of(init_arg) -> str:
    try:
        data = pickle.dumps(init_arg, protocol=5)
    except Exception:  # noqa: BLE001 - unpicklable: the engine fails on it with its own message
        return repr(id(init_arg))
    return hashlib.blake2b(data, digest_size=12).hexdigest()


_DIED = object()


class BatchEngine:
    """Ordered map in batches, ``window`` batches in flight. Subclasses provide ``_open(init_arg)``
    (a per-map context), ``_submit(ctx, fn, batch)``, ``_result(ctx, handle)`` (raises
    :class:`WorkerDied`), ``_run_alone(ctx, fn, item)`` (raises WorkerDied), ``_cancel(ctx, handles)``
    and ``slots()`` (how many batches run at once)."""

    name = "engine"

    def __init__(self, batch_size: int = 64, path_map=None, worker_env: dict | None = None) -> None:
        self.batch_size = batch_size
        self.path_map = path_map
        self.worker_env = dict(worker_env) if worker_env is not None else {
            k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        self.stats = {"tasks": 0, "isolated": 0, "crashed": 0}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    #: a suspect is marked ``crashed`` only after its worker died this many times with it alone:
    #: on a cluster a worker is also lost for reasons of its own (a node preempted, a heartbeat
    #: missed under load), and an innocent file must not be marked for that
    ISOLATION_TRIES = 2

    def _alone(self, ctx, fn, item):
        for _ in range(self.ISOLATION_TRIES):
            try:
                return self._run_alone(ctx, fn, item)
            except WorkerDied:
                continue
        return _DIED

    def map(self, fn, items: list, init_arg, on_crash=None):
        """``executor._map``'s contract: results of ``fn`` over ``items``, in input order; a task
        whose worker dies is re-run one item at a time, and the item that kills its worker again
        gets ``on_crash(item)`` (without ``on_crash``: WorkerDied is raised)."""
        return self._iter(fn, list(items), init_arg, on_crash)

    def _iter(self, fn, items, init_arg, on_crash):
        if not items:
            return
        pm = self.path_map
        send = [pm.to_worker(x) for x in items] if pm is not None else items
        bs = self.batch_size
        starts = list(range(0, len(items), bs))
        ctx = self._open(init_arg)
        pending: deque = deque()
        nxt = 0
        window = max(2, 2 * self.slots())  # batches in flight: two per worker slot
        try:
            while nxt < len(starts) or pending:
                while nxt < len(starts) and len(pending) < window:
                    s = starts[nxt]
                    pending.append((s, self._submit(ctx, fn, send[s:s + bs])))
                    self.stats["tasks"] += 1
                    nxt += 1
                s, handle = pending.popleft()
                try:
                    out = self._result(ctx, handle)
                except WorkerDied:
                    if on_crash is None:
                        raise
                    out = None
                if out is not None:
                    for r in out:
                        yield pm.to_driver(r) if pm is not None else r
                    continue
                for orig, sent in zip(items[s:s + bs], send[s:s + bs]):
                    self.stats["isolated"] += 1
                    r = self._alone(ctx, fn, sent)
                    if r is _DIED:
                        self.stats["crashed"] += 1
                        yield on_crash(orig)
                        continue
                    yield pm.to_driver(r) if pm is not None else r
        finally:
            if pending:
                try:
                    self._cancel(ctx, [h for _, h in pending])
                except Exception:  # noqa: BLE001 - best effort: the run is ending anyway
                    pass
