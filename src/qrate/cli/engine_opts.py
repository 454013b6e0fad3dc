"""``--engine local|dask|ray``, ``--cluster`` and ``--path-map``: where the per-file work runs
(docs/distributed.md). The engine object is built here, from the optional ``distributed`` extra;
the executor only calls its ``map``."""

from __future__ import annotations

import contextlib
import os

import typer

ENGINE_HELP = ("Where the per-file work (read, preview, features, hashes, vision) runs: local (this machine's "
               "processes), dask or ray (the optional 'distributed' extra; docs/distributed.md). Only this "
               "process writes the index. Default: $QRATE_ENGINE, engine in config.yaml, else local.")


def engine_option():
    return typer.Option(None, "--engine", metavar="local|dask|ray", help=ENGINE_HELP)


def cluster_option():
    return typer.Option(None, "--cluster", metavar="ADDRESS",
                        help="The Dask scheduler (tcp://host:8786) or Ray cluster (auto, ray://host:10001) to run on "
                             "(default: $QRATE_CLUSTER, cluster in config.yaml, else a local cluster of --workers "
                             "processes).")


def path_map_option():
    return typer.Option(None, "--path-map", metavar="LOCAL=REMOTE",
                        help="The workers see LOCAL (a path here) as REMOTE, e.g. /photos=/mnt/nas/photos (repeat "
                             "for several). The index keeps this machine's paths.")


def engine_for(engine: str | None, cluster: str | None, path_map: list[str] | None, workers: int = 0):
    """A context manager giving the engine for IndexOptions.engine (None: the local pool). Raises
    the one-line install hint before any work when the extra is missing."""
    from qrate.cli.vision_opts import _config_value
    from qrate.errors import UsageError

    name = (engine or os.environ.get("QRATE_ENGINE") or _config_value("engine") or "local").strip().lower()
    if name == "local" and not cluster and not path_map:
        return contextlib.nullcontext(None)
    from qrate.extras.distributed import ENGINES, make_engine, parse_path_map, require

    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}", hint="use --engine local, dask or ray")
    require(name)
    if name == "local":
        raise UsageError("--cluster and --path-map need --engine dask or ray")
    address = cluster or os.environ.get("QRATE_CLUSTER") or _config_value("cluster")
    return make_engine(name, address, parse_path_map(path_map), workers=workers)
