"""SQLite persistence (`--data FILE`): one row per object, one transaction per write.

The table holds each object's serialized form and resourceVersion; `meta` holds the
resourceVersion counter and the server's own secrets (token signing key, admin token), so a
restart resumes with every resourceVersion intact. Those secrets are why a new database file is
created readable by its owner only (SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator


class SqlitePersistence:
    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS objects (tbl TEXT NOT NULL, ns TEXT NOT NULL, "
            "name TEXT NOT NULL, rv INTEGER NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (tbl, ns, name))"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    def write(self, table: str, ns: str, name: str, rv: int, raw: bytes | None) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN")
        try:
            if raw is None:
                cur.execute(
                    "DELETE FROM objects WHERE tbl=? AND ns=? AND name=?", (table, ns, name)
                )
            else:
                cur.execute(
                    "INSERT OR REPLACE INTO objects (tbl, ns, name, rv, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (table, ns, name, rv, raw),
                )
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (str(rv),))
            cur.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a full disk does that to the transaction);
            # a second ROLLBACK would then hide the real error.
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, *keys: str) -> None:
        self.db.executemany("DELETE FROM meta WHERE key=?", [(k,) for k in keys])

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def rows(self) -> Iterator[tuple[str, bytes, int]]:
        """(table, serialized object, rv); CRDs first so their types exist before their objects."""
        yield from self.db.execute(
            "SELECT tbl, data, rv FROM objects ORDER BY "
            "tbl != 'customresourcedefinitions.apiextensions.k8s.io', rv"
        )

    def close(self) -> None:
        self.db.close()
