"""The Ray engine: batches as tasks of long-lived actors (one CPU each).

An actor is a worker process that keeps its state between batches: the pass options, and a vision
analyzer whose models load once per actor (``_base.run_batch``). With an address it joins an
existing cluster (``ray start --head`` ...; ``--cluster auto`` or ``ray://host:10001``); without one
it starts a local instance of ``workers`` CPUs (no dashboard, usage stats off, logs not copied to
the driver's terminal). An actor that dies (a native crash) is replaced; its batches are re-run one
item at a time on a fresh actor, and the item that kills it again is ``crashed``. Ray Data is not
needed: plain actors keep the driver's ordered, batched commits (and need no pandas/pyarrow).
"""

from __future__ import annotations

import os

from qrate.errors import QrateError
from qrate.extras.distributed._base import BatchEngine, WorkerDied, run_batch, token_of

_ACTOR = None


def _actor_class():
    global _ACTOR
    if _ACTOR is None:
        import ray

        @ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)
        class QrateWorker:
            def run(self, fn, items, init_arg, token, env):
                return run_batch(fn, items, init_arg, token, env)

            def pid(self) -> int:
                return os.getpid()

        _ACTOR = QrateWorker
    return _ACTOR


class RayEngine(BatchEngine):
    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int = 0, batch_size: int = 64, path_map=None,
                 worker_env: dict | None = None) -> None:
        super().__init__(batch_size, path_map, worker_env)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves this machine
        import ray

        self._own = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                else:
                    from qrate.executor import default_workers

                    ray.init(num_cpus=workers or default_workers(), include_dashboard=False, log_to_driver=False,
                             logging_level="ERROR", configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise QrateError(f"cannot start or reach Ray{' at ' + address if address else ''}: {e}",
                                 hint="start a cluster with `ray start --head`, or check --cluster") from None
            self._own = True
        n = workers or int(ray.cluster_resources().get("CPU", 1))
        self.n_actors = max(1, n)
        self.actors: list = []
        self._next = 0
        self._solo = 0

    def slots(self) -> int:
        return self.n_actors

    def _spawn(self):
        return _actor_class().remote()

    def _open(self, init_arg):
        import ray

        while len(self.actors) < self.n_actors:
            self.actors.append(self._spawn())
        return ray.put(init_arg), token_of(init_arg)

    def _submit(self, ctx, fn, batch):
        ref, token = ctx
        i = self._next % len(self.actors)
        self._next += 1
        actor = self.actors[i]
        return actor, actor.run.remote(fn, batch, ref, token, self.worker_env)

    def _result(self, ctx, handle):
        import ray
        from ray.exceptions import RayActorError

        actor, ref = handle
        try:
            return ray.get(ref)
        except RayActorError as e:
            self._replace(actor)
            raise WorkerDied(str(e).splitlines()[0] if str(e) else "actor died") from None

    def _replace(self, actor) -> None:
        for i, a in enumerate(self.actors):
            if a is actor:
                self.actors[i] = self._spawn()
                self._solo = i

    def _run_alone(self, ctx, fn, item):
        # on the fresh actor that replaced the one that died (nothing else is queued on it); the
        # other actors' batches go on
        actor = self.actors[self._solo]
        return self._result(ctx, (actor, actor.run.remote(fn, [item], ctx[0], ctx[1], self.worker_env)))[0]

    def _cancel(self, ctx, handles) -> None:
        import ray

        for _, ref in handles:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - finished or its actor is gone
                pass

    def close(self) -> None:
        import ray

        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self._own and ray.is_initialized():
            ray.shutdown()
            self._own = False
