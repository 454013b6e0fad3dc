"""The SQLite index: one row per asset, keyed by the absolute path's bytes.

WAL journal, a schema version in ``meta``, one transaction per batch (an interrupted run keeps
every batch it committed). qrate never writes into the photo folders: the index lives under the
user cache dir (``$XDG_CACHE_HOME/qrate/index.sqlite``) or where ``--db`` says.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import fields

import platformdirs

from qrate.errors import FileError, IndexDbError
from qrate.ir import Asset, display_path, path_key

SCHEMA_VERSION = 1

_SCALAR = [
    "size", "mtime_ns", "ext", "kind", "container", "capture_time", "capture_ts", "capture_source",
    "make", "model", "serial", "lens", "iso", "exposure_time", "f_number", "focal_length", "orientation",
    "width", "height", "preview_source", "preview_width", "preview_height", "preview_key", "content_hash",
    "hash_basis", "dhash", "phash", "features_version", "status",
]
_JSON = ["companions", "notes", "features"]
_COLUMNS = ["path", "display", *_SCALAR, *_JSON, "error_code", "error_message"]
#: Asset fields filled from the pass_data table (optional passes, passes/registry.py), not from assets
PASS_FIELDS = ("vision",)
assert set(_SCALAR + _JSON + ["path", "error", *PASS_FIELDS]) == {f.name for f in fields(Asset)}

_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    display TEXT NOT NULL,
    {", ".join(c + " " + ("INTEGER" if c in ("size", "mtime_ns", "iso", "orientation", "width", "height", "preview_width", "preview_height", "features_version") else "REAL" if c in ("capture_ts", "exposure_time", "f_number", "focal_length") else "TEXT") for c in _SCALAR)},
    companions TEXT NOT NULL DEFAULT '[]',
    notes TEXT NOT NULL DEFAULT '[]',
    features TEXT,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS assets_capture ON assets (capture_ts);
CREATE INDEX IF NOT EXISTS assets_size ON assets (size);
-- results of optional passes (vision, ...): valid while the file's (size, mtime_ns) and the pass's
-- version match; ``data`` is JSON, ``error`` a per-file error code when the pass failed on the file
CREATE TABLE IF NOT EXISTS pass_data (
    path BLOB NOT NULL,
    pass TEXT NOT NULL,
    version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    data TEXT,
    error TEXT,
    PRIMARY KEY (path, pass)
);
-- taste (docs/taste.md): the photographer's pairwise preferences (winner > loser, or a tie), with
-- the taste features of both photos at that time; ``answer`` groups the pairs of one choice (undo)
CREATE TABLE IF NOT EXISTS preferences (
    id INTEGER PRIMARY KEY,
    answer INTEGER NOT NULL,
    winner BLOB NOT NULL,
    loser BLOB NOT NULL,
    tie INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    created REAL NOT NULL,
    winner_features TEXT NOT NULL,
    loser_features TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS preferences_answer ON preferences (answer);
CREATE TABLE IF NOT EXISTS taste_models (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    created REAL NOT NULL,
    model TEXT NOT NULL
);
"""


def default_db_path() -> str:
    return os.path.join(platformdirs.user_cache_dir("qrate", appauthor=False), "index.sqlite")


def _prefix_range(root: str) -> tuple[bytes, bytes]:
    """Byte range covering every path strictly below ``root``."""
    key = path_key(os.path.abspath(root)).rstrip(b"/") + b"/"
    return key, key[:-1] + b"0"  # '0' is the byte after '/'


SQLITE_MAGIC = b"SQLite format 3\x00"


class Index:
    def __init__(self, path: str | None, readonly: bool = False) -> None:
        """``path=None`` opens an in-memory index (``--no-cache``). ``readonly=True`` (status,
        explain, export) opens an existing index without writing anything, so a read-only file
        or folder can still be read; a missing file is an error rather than a new empty index.

        Nothing is written (not even the journal-mode pragma) until the file is known to be a qrate
        index, or empty, or absent: an SQLite database of another program, or any other non-empty
        file (a photo), is refused untouched."""
        self.path = path
        self.readonly = readonly
        try:
            if path is None:
                self.db = sqlite3.connect(":memory:", isolation_level=None)
                self._init_schema()
                return
            exists = self._check_file(path)
            if readonly:
                if not exists:
                    raise IndexDbError(f"there is no index at {path}",
                                       hint="run `qrate index PATH` first, or pass the --db it was written to")
                self.db = self._connect_ro(path)
                self._check_schema(self.db)
                return
            self._check_writable(path, exists)
            if exists:
                with contextlib.closing(self._connect_ro(path)) as probe:
                    self._check_schema(probe)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise IndexDbError(f"cannot open the index {path}: {e}",
                               hint="it is only a cache: delete it (or pass another --db) and index again") from None
        except OSError as e:
            raise IndexDbError(f"cannot create the index at {path}: {e.strerror}", hint="pass --db PATH") from None

    @staticmethod
    def _check_file(path: str) -> bool:
        """Whether ``path`` exists as an index candidate; refuse what can never be one."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            raise IndexDbError(f"{path} is not a regular file, so it cannot be the index",
                               hint="pass --db with a file name (a new file is created)")
        if st.st_size == 0:
            return True
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise IndexDbError(f"cannot read the index {path}: {e.strerror}", hint="check its permissions") from None
        try:
            head = os.read(fd, len(SQLITE_MAGIC))
        finally:
            os.close(fd)
        if head != SQLITE_MAGIC:
            raise IndexDbError(f"{path} is not a qrate index (it is not an SQLite database); qrate leaves it untouched",
                               hint="pass --db with a new file name")
        return True

    @staticmethod
    def _check_writable(path: str, exists: bool) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        if exists and (not os.access(path, os.W_OK) or not os.access(folder, os.W_OK)):
            raise IndexDbError(f"the index {path} is read-only: this command needs to write to it",
                               hint="`qrate status`, `explain` and `export` can still read it; pass --db with a "
                                    "writable file to index or cull")

    @staticmethod
    def _connect_ro(path: str) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # a WAL index in a read-only folder: no -shm can be made; read the file as it is
            db.close()
            db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db

    def _check_schema(self, db: sqlite3.Connection) -> None:
        """An SQLite file is qrate's when it has the ``meta`` table with a ``schema_version`` (an
        empty database, with no table at all, may become one)."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and not self.readonly:
            return
        row = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise IndexDbError(
                f"{self.path} is an SQLite database that is not a qrate index; qrate leaves it untouched",
                hint="pass --db with a new file name")
        self._check_version(row[0])

    def _check_version(self, value) -> None:
        if str(value).strip() != str(SCHEMA_VERSION):
            raise IndexDbError(
                f"the index {self.path} has schema version {str(value)[:40]}, this qrate uses {SCHEMA_VERSION}",
                hint="use another --db (or delete that index file; it is only a cache)",
            )

    def _init_schema(self) -> None:
        row = None
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            pass
        if row is not None:
            self._check_version(row[0])
        self.db.executescript(_DDL)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    # -- writes ----------------------------------------------------------------------------------
    def upsert(self, assets: Iterable[Asset]) -> None:
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        update = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS if c != "path")
        sql = f"INSERT INTO assets ({cols}) VALUES ({marks}) ON CONFLICT(path) DO UPDATE SET {update}"
        rows = [self._row(a) for a in assets]
        with self.transaction():
            self.db.executemany(sql, rows)

    def transaction(self) -> "_Tx":
        return _Tx(self.db)

    def mark_missing(self, paths: Iterable[str]) -> int:
        keys = [(path_key(p),) for p in paths]
        with self.transaction():
            self.db.executemany("UPDATE assets SET status='missing' WHERE path=?", keys)
        return len(keys)

    def forget(self, paths: Iterable[str]) -> int:
        """Drop the rows of ``paths`` (a JPEG that was an asset of its own and is now a RAW's companion)."""
        keys = [(path_key(p),) for p in paths]
        with self.transaction():
            self.db.executemany("DELETE FROM assets WHERE path=?", keys)
        return len(keys)

    def set_hashes(self, items: Iterable[tuple[str, str, str]]) -> None:
        with self.transaction():
            self.db.executemany(
                "UPDATE assets SET content_hash=?, hash_basis=? WHERE path=?",
                [(h, basis, path_key(p)) for p, h, basis in items],
            )

    def set_features(self, items: Iterable[tuple[str, dict, int, str, str]]) -> None:
        with self.transaction():
            self.db.executemany(
                "UPDATE assets SET features=?, features_version=?, dhash=?, phash=? WHERE path=?",
                [(json.dumps(f, sort_keys=True), v, d, ph, path_key(p)) for p, f, v, d, ph in items],
            )

    def set_pass_data(self, name: str, version: int,
                      items: Iterable[tuple[str, int, int, dict | None, str | None]]) -> None:
        """Store an optional pass's per-file results: (path, size, mtime_ns, data, error_code)."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO pass_data (path, pass, version, size, mtime_ns, data, error) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(path, pass) DO UPDATE SET version=excluded.version, size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, data=excluded.data, error=excluded.error",
                [(path_key(p), name, version, size, mtime,
                  None if data is None else json.dumps(data, sort_keys=True), err)
                 for p, size, mtime, data, err in items])

    def pass_data(self, name: str, version: int, roots: Iterable[str] | None = None
                  ) -> dict[str, tuple[dict | None, str | None]]:
        """path -> (data, error_code) of the *current* results of pass ``name``: same version and
        the same (size, mtime_ns) as the file's row in assets (a changed file's result is stale)."""
        if not self._has_table("pass_data"):  # an index opened read-only, written by an older qrate
            return {}
        sql = ("SELECT p.path, p.data, p.error FROM pass_data p JOIN assets a ON a.path = p.path "
               "WHERE p.pass = ? AND p.version = ? AND p.size = a.size AND p.mtime_ns = a.mtime_ns")
        out: dict[str, tuple[dict | None, str | None]] = {}
        ranges = [(None, None, None)] if roots is None else self._ranges(roots)
        for lo, hi, exact in ranges:
            where, args = ("", ()) if lo is None else (" AND ((p.path >= ? AND p.path < ?) OR p.path = ?)", (lo, hi, exact))
            for key, data, err in self.db.execute(sql + where, (name, version, *args)):
                try:
                    out[os.fsdecode(key)] = (json.loads(data) if data else None, err)
                except (ValueError, RecursionError):
                    raise IndexDbError("the index has a damaged pass_data row",
                                       hint="it is only a cache: delete it (or pass another --db) and index again"
                                       ) from None
        return out

    # -- taste (docs/taste.md) --------------------------------------------------------------------
    def add_preferences(self, source: str, pairs: Iterable[tuple[str, str, bool, dict, dict]],
                        created: float) -> int:
        """Store one answer's pairs ``(winner, loser, tie, winner_features, loser_features)``;
        returns the answer number (pairs of one answer are undone together)."""
        with self.transaction():
            row = self.db.execute("SELECT COALESCE(MAX(answer), 0) + 1 FROM preferences").fetchone()
            answer = int(row[0])
            self.db.executemany(
                "INSERT INTO preferences (answer, winner, loser, tie, source, created, winner_features, "
                "loser_features) VALUES (?,?,?,?,?,?,?,?)",
                [(answer, path_key(w), path_key(lo), int(bool(tie)), source, created,
                  json.dumps(fw, sort_keys=True), json.dumps(fl, sort_keys=True)) for w, lo, tie, fw, fl in pairs])
        return answer

    def undo_preference(self, source: str) -> list[tuple[str, str, bool]]:
        """Delete the last answer of ``source``; returns its (winner, loser, tie) pairs."""
        with self.transaction():
            row = self.db.execute("SELECT MAX(answer) FROM preferences WHERE source = ?", (source,)).fetchone()
            if row is None or row[0] is None:
                return []
            got = self.db.execute("SELECT winner, loser, tie FROM preferences WHERE answer = ? ORDER BY id",
                                  (row[0],)).fetchall()
            self.db.execute("DELETE FROM preferences WHERE answer = ?", (row[0],))
        return [(os.fsdecode(w), os.fsdecode(lo), bool(t)) for w, lo, t in got]

    def forget_preferences(self, source: str, paths: Iterable[str]) -> int:
        """Drop ``source``'s pairs that involve any of ``paths`` (a re-import replaces them)."""
        with self.transaction():
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS forget_paths (path BLOB PRIMARY KEY)")
            self.db.execute("DELETE FROM forget_paths")
            self.db.executemany("INSERT OR IGNORE INTO forget_paths VALUES (?)", [(path_key(p),) for p in paths])
            before = self.db.total_changes
            self.db.execute("DELETE FROM preferences WHERE source = ? AND (winner IN (SELECT path FROM forget_paths) "
                            "OR loser IN (SELECT path FROM forget_paths))", (source,))
            n = self.db.total_changes - before
            self.db.execute("DELETE FROM forget_paths")
            return n

    def preferences(self) -> list[dict]:
        """Every stored pair, oldest first: {answer, winner, loser, tie, source, created,
        winner_features, loser_features}."""
        if not self._has_table("preferences"):
            return []
        out = []
        for ans, w, lo, tie, src, created, fw, fl in self.db.execute(
                "SELECT answer, winner, loser, tie, source, created, winner_features, loser_features "
                "FROM preferences ORDER BY id"):
            try:
                out.append({"answer": ans, "winner": os.fsdecode(w), "loser": os.fsdecode(lo), "tie": bool(tie),
                            "source": src, "created": created, "winner_features": json.loads(fw),
                            "loser_features": json.loads(fl)})
            except (ValueError, TypeError, RecursionError):
                raise IndexDbError("the index has a damaged preferences row",
                                   hint="delete the index's preferences (or pass another --db) and learn again"
                                   ) from None
        return out

    def save_taste_model(self, name: str, version: int, model: dict, created: float) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO taste_models (name, version, created, model) VALUES (?,?,?,?) "
                            "ON CONFLICT(name) DO UPDATE SET version=excluded.version, created=excluded.created, "
                            "model=excluded.model", (name, version, created, json.dumps(model, sort_keys=True)))

    def taste_model(self, name: str = "default") -> dict | None:
        """The stored model ``name`` (with ``version`` and ``created``), or None."""
        if not self._has_table("taste_models"):
            return None
        row = self.db.execute("SELECT version, created, model FROM taste_models WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            model = json.loads(row[2])
        except (ValueError, RecursionError):
            raise IndexDbError("the index has a damaged taste model", hint="run `qrate learn` again") from None
        if not isinstance(model, dict):
            raise IndexDbError("the index has a damaged taste model", hint="run `qrate learn` again")
        return {**model, "version": row[0], "created": row[1]}

    def pass_status(self, name: str, version: int, roots: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """path -> (the result's ``variant``, error code) of the current results of pass ``name``
        (as :meth:`pass_data`), without parsing the results themselves."""
        if not self._has_table("pass_data"):
            return {}
        sql = ("SELECT p.path, COALESCE(json_extract(p.data, '$.variant'), ''), p.error FROM pass_data p "
               "JOIN assets a ON a.path = p.path WHERE p.pass = ? AND p.version = ? AND p.size = a.size "
               "AND p.mtime_ns = a.mtime_ns AND ((p.path >= ? AND p.path < ?) OR p.path = ?)")
        out: dict[str, tuple[str, str | None]] = {}
        for lo, hi, exact in self._ranges(roots):
            for key, variant, err in self.db.execute(sql, (name, version, lo, hi, exact)):
                out[os.fsdecode(key)] = (variant if isinstance(variant, str) else "", err)
        return out

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    # -- reads -----------------------------------------------------------------------------------
    def known(self, roots: Iterable[str]) -> dict[str, tuple[int, int, str, str | None, str, int | None]]:
        """path -> (size, mtime_ns, status, error_code, companions-json, features_version) under ``roots``."""
        out = {}
        for lo, hi, exact in self._ranges(roots):
            for key, size, mtime, status, err, comp, fv in self.db.execute(
                "SELECT path, size, mtime_ns, status, error_code, companions, features_version FROM assets "
                "WHERE (path >= ? AND path < ?) OR path = ?",
                (lo, hi, exact),
            ):
                out[os.fsdecode(key)] = (size, mtime, status, err, comp, fv)
        return out

    def assets(self, roots: Iterable[str] | None = None, include_missing: bool = False) -> list[Asset]:
        """Assets under ``roots`` (all when None), sorted by path bytes."""
        cols = ", ".join(_COLUMNS)
        where = "" if include_missing else " AND status != 'missing'"
        result: dict[bytes, Asset] = {}
        if roots is None:
            cur: Iterator = self.db.execute(f"SELECT {cols} FROM assets WHERE 1=1{where}")
            for row in cur:
                result[row[0]] = self._asset(row)
        else:
            for lo, hi, exact in self._ranges(roots):
                for row in self.db.execute(
                    f"SELECT {cols} FROM assets WHERE ((path >= ? AND path < ?) OR path = ?){where}", (lo, hi, exact)
                ):
                    result[row[0]] = self._asset(row)
        return [result[k] for k in sorted(result)]

    def rows(self, roots: Iterable[str], columns: str, where: str = "1=1", args: tuple = ()) -> list[tuple]:
        """Selected columns (``path`` decoded to str first) of rows under ``roots``, sorted by path."""
        out: dict[bytes, tuple] = {}
        for lo, hi, exact in self._ranges(roots):
            for row in self.db.execute(
                f"SELECT path, {columns} FROM assets WHERE ((path >= ? AND path < ?) OR path = ?) AND ({where})",
                (lo, hi, exact, *args),
            ):
                out[row[0]] = (os.fsdecode(row[0]), *row[1:])
        return [out[k] for k in sorted(out)]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM assets").fetchone()[0]

    # -- mapping ---------------------------------------------------------------------------------
    @staticmethod
    def _ranges(roots: Iterable[str]) -> list[tuple[bytes, bytes, bytes]]:
        out = []
        for r in roots:
            lo, hi = _prefix_range(r)
            out.append((lo, hi, path_key(os.path.abspath(r))))
        return out

    @staticmethod
    def _row(a: Asset) -> tuple:
        vals: list = [path_key(a.path), display_path(a.path)]
        vals += [getattr(a, c) for c in _SCALAR]
        vals += [json.dumps(a.companions), json.dumps(a.notes), None if a.features is None else json.dumps(a.features, sort_keys=True)]
        vals += [a.error.code if a.error else None, a.error.message if a.error else None]
        return tuple(vals)

    @staticmethod
    def _asset(row: tuple) -> Asset:
        try:
            return Index._asset_of(row)
        except (ValueError, TypeError, RecursionError) as e:
            raise IndexDbError(f"the index has a damaged row ({type(e).__name__})",
                               hint="it is only a cache: delete it (or pass another --db) and index again") from None

    @staticmethod
    def _asset_of(row: tuple) -> Asset:
        d = dict(zip(_COLUMNS, row))
        if not isinstance(d["path"], bytes):
            raise TypeError("path")
        for c in ("make", "model", "serial", "lens", "ext", "status", "capture_time", "capture_source",
                  "preview_source", "error_code", "error_message", "container", "kind"):
            if d[c] is not None and not isinstance(d[c], str):
                raise TypeError(c)
        kwargs = {c: d[c] for c in _SCALAR}
        kwargs["companions"] = [] if d["companions"] == "[]" else json.loads(d["companions"])  # most rows
        kwargs["notes"] = [] if d["notes"] == "[]" else json.loads(d["notes"])
        kwargs["features"] = json.loads(d["features"]) if d["features"] else None
        err = FileError(d["error_code"], d["error_message"] or "") if d["error_code"] else None
        return Asset(path=os.fsdecode(d["path"]), error=err, **kwargs)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
