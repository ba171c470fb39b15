"""The runs database: one SQLite file (WAL, foreign keys, a busy timeout so that a server and a CLI
process can write at the same time) with its schema built by numbered migrations.

``schema_version`` holds the version the file is at; opening a file applies the migrations it lacks
in one transaction, and refuses a file written by a newer attnscope (a version it does not know) or a
file that is not an attnscope runs database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from attnscope.errors import InputError

BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's transaction

# Migration n (1-based) brings the schema from version n - 1 to n. Append; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,                 -- analysis | attribution | generation | ...
        created TEXT NOT NULL,              -- UTC, ISO 8601 with Z
        origin TEXT NOT NULL,               -- server | cli | library | import
        text TEXT NOT NULL,                 -- the input text as stored (masked where masking applies)
        text_sha256 TEXT NOT NULL,          -- of the text as given
        chars INTEGER NOT NULL,
        model_spec TEXT NOT NULL,
        model_name TEXT NOT NULL,
        model_fingerprint TEXT NOT NULL,
        method TEXT,                        -- attribution method, or NULL
        summary TEXT NOT NULL               -- one line: what the run showed
    );
    CREATE INDEX runs_created ON runs (created);
    CREATE INDEX runs_model ON runs (model_name);
    CREATE TABLE objects (
        sha256 TEXT PRIMARY KEY,            -- content address of a file under objects/
        size INTEGER NOT NULL
    );
    CREATE TABLE run_objects (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,                 -- result.json, ...
        sha256 TEXT NOT NULL REFERENCES objects (sha256),
        PRIMARY KEY (run_id, name)
    );
    CREATE INDEX run_objects_sha256 ON run_objects (sha256);
    """,
    """
    CREATE TABLE rule_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT REFERENCES runs (id) ON DELETE CASCADE,  -- the run evaluated, or NULL (not stored)
        created TEXT NOT NULL,              -- UTC, ISO 8601 with Z
        rules_sha256 TEXT NOT NULL,         -- of the rule file's bytes
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,             -- info | warning | critical
        passed INTEGER,                     -- 1, 0, or NULL (the rule could not be evaluated)
        step INTEGER,                       -- the generation step, or NULL
        result TEXT NOT NULL                -- the rule's result (JSON), token texts masked as the run's
    );
    CREATE INDEX rule_log_run ON rule_log (run_id);
    CREATE INDEX rule_log_created ON rule_log (created);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """The database at ``path`` (created if missing), migrated to :data:`SCHEMA_VERSION`."""
    try:
        # one connection serves every thread of a process: RunsStore serialises the calls with a lock
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise InputError(f"cannot open the runs database {path}: {error}") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")  # a committed run survives a killed process and the OS
        connection.execute("PRAGMA foreign_keys = ON")
        _migrate(connection, path)
    except sqlite3.DatabaseError as error:
        connection.close()
        raise InputError(f"{path} is not a usable attnscope runs database: {error}") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            if tables:
                raise InputError(
                    f"{path} is an SQLite file of something else (tables {sorted(tables)}), not a runs store"
                )
            connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            connection.execute("INSERT INTO schema_version VALUES (0)")
        (version,) = connection.execute("SELECT version FROM schema_version").fetchone()
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{path} is at schema version {version}, written by a newer attnscope (this one knows up to "
                f"{SCHEMA_VERSION}): upgrade attnscope"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[number]):
                connection.execute(statement)
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """A migration's statements (executed one by one inside the migration's transaction:
    ``executescript`` would commit it)."""
    lines = [line.split("--")[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
