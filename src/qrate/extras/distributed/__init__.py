"""Run the per-file passes on a cluster (the optional ``distributed`` extra): Dask or Ray.

The scan, the diff against the index and every SQLite write stay on the driver (qrate.executor);
an engine only replaces the local process pool behind ``executor._map``: it runs the executor's
own worker functions (``_work_ingest``, ``_work_sample``, ``_work_hash``, ``_work_analyze``) as batched tasks and
hands the results back in input order, so the index equals the local one row for row
(docs/distributed.md). Layer 6: may import the executor; the executor never imports this.

``make_engine("dask" | "ray", cluster=ADDRESS)`` builds one; without an address it starts a local
cluster (tests, one big machine). Engines are context managers (``close()`` ends what they
started; an existing cluster is left running).
"""

from __future__ import annotations


from qrate.errors import MissingExtraError, UsageError
from qrate.extras.distributed.pathmap import PathMap, parse_path_map

ENGINES = ("local", "dask", "ray")
INSTALL_HINT = ".venv/bin/pip install -e '.[distributed]'  (on the driver and on every worker: docs/distributed.md)"
#: engine -> import names it needs (found without importing anything heavy)
_NEEDS = {
    "dask": {"dask": "dask", "distributed": "dask.distributed (dask[distributed])"},
    "ray": {"ray": "ray"},
}

__all__ = ["ENGINES", "INSTALL_HINT", "PathMap", "make_engine", "missing", "parse_path_map", "require"]


def missing(engine: str) -> list[str]:
    """What ``engine`` needs that is not installed (empty: all there)."""
    from qrate.extras._needs import missing_modules

    return missing_modules(_NEEDS.get(engine, {}))


def require(engine: str) -> None:
    """Raise the one-line install hint when ``engine``'s runtime is not installed."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", hint="use one of: " + ", ".join(ENGINES))
    gone = missing(engine)
    if gone:
        raise MissingExtraError(
            f"--engine {engine}", "distributed",
            message=(f"--engine {engine} needs the optional 'distributed' extra, which this installation does "
                     f"not have (missing: {', '.join(gone)}); nothing was read"),
            hint=INSTALL_HINT)


def make_engine(engine: str, cluster: str | None = None, path_map: PathMap | None = None, workers: int = 0,
                batch_size: int = 64, worker_env: dict[str, str] | None = None):
    """The engine object for ``IndexOptions.engine`` (None for ``local``).

    ``cluster``: the scheduler's address (Dask: ``tcp://host:8786``; Ray: ``ray://host:10001`` or
    ``auto``); None starts a local cluster of ``workers`` processes (0: one per CPU).
    ``path_map``: how the workers see the driver's paths. ``batch_size``: files per task."""
    require(engine)
    if engine == "local":
        if cluster or path_map:
            raise UsageError("--cluster and --path-map need --engine dask or ray")
        return None
    if batch_size < 1:
        raise UsageError("the batch size must be at least 1")
    if engine == "dask":
        from qrate.extras.distributed.dask_engine import DaskEngine

        return DaskEngine(cluster, workers=workers, batch_size=batch_size, path_map=path_map, worker_env=worker_env)
    from qrate.extras.distributed.ray_engine import RayEngine

    return RayEngine(cluster, workers=workers, batch_size=batch_size, path_map=path_map, worker_env=worker_env)
