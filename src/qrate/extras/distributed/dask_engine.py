"""The Dask engine: batches as ``distributed.Client.submit`` tasks.

With an address it joins an existing scheduler (``dask scheduler`` + ``dask worker --nthreads 1``);
without one it starts a ``LocalCluster`` of worker processes (one thread each, no dashboard, on
loopback). Per-worker state (the pass options, a vision analyzer whose models load on first use)
is set once per worker process per map (``_base.run_batch``). A worker that dies makes Dask
reschedule its tasks up to ``distributed.scheduler.allowed-failures`` times; then the task fails
with ``KilledWorker`` and its items are re-run one at a time (the one that kills again: ``crashed``).
"""

from __future__ import annotations

from qrate.errors import QrateError
from qrate.extras.distributed._base import BatchEngine, WorkerDied, run_batch, token_of


class DaskEngine(BatchEngine):
    name = "dask"

    def __init__(self, address: str | None = None, *, workers: int = 0, batch_size: int = 64, path_map=None,
                 worker_env: dict | None = None, client=None) -> None:
        super().__init__(batch_size, path_map, worker_env)
        from distributed import Client, LocalCluster

        self._own_cluster = self._own_client = None
        if client is not None:
            self.client = client
        elif address:
            try:
                self.client = self._own_client = Client(address, timeout="30s")
            except (OSError, TimeoutError) as e:
                raise QrateError(f"cannot reach the Dask scheduler at {address}: {e}",
                                 hint="start it with `dask scheduler`, or check --cluster") from None
        else:
            from qrate.executor import default_workers

            import dask

            # a task whose worker died fails at once (KilledWorker) and the engine isolates its
            # items (Dask's own retries would only kill more workers on the same file); no
            # statistical profiler sampling every worker's stack each 10 ms (its CPU is overhead)
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.worker.profile.enabled": False,
                                  "distributed.admin.system-monitor.gil.enabled": False}):
                self._own_cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                                                 processes=True, dashboard_address=None, host="127.0.0.1")
            self.client = self._own_client = Client(self._own_cluster)

    def slots(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a scheduler between workers: assume one
            return 1

    def _open(self, init_arg):
        return init_arg, token_of(init_arg)

    def _submit(self, ctx, fn, batch):
        init_arg, token = ctx
        return self.client.submit(run_batch, fn, batch, init_arg, token, self.worker_env, pure=False)

    def _result(self, ctx, fut):
        from distributed.scheduler import KilledWorker

        try:
            return fut.result()
        except KilledWorker as e:
            raise WorkerDied(str(e)) from None

    def _run_alone(self, ctx, fn, item):
        return self._result(ctx, self._submit(ctx, fn, [item]))[0]

    def _cancel(self, ctx, futs) -> None:
        self.client.cancel(futs)

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None
        if self._own_cluster is not None:
            self._own_cluster.close()
            self._own_cluster = None
