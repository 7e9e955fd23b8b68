"""The SQL the SQLite and PostgreSQL user stores share (adapters/sql/user_store.py): PostgreSQL's
numbered placeholders made from SQLite's, and every shared statement valid on SQLite's real
engine (the PostgreSQL side runs in tests/contract/test_user_store_contract.py and tests/postgres)."""

from __future__ import annotations

import sqlite3

from adapters.sql import user_store as sql
from adapters.sqlite.user_store import SCHEMA


def test_placeholders_are_numbered_in_order():
    assert sql.numbered("SELECT * FROM jobs WHERE a = ? AND b IN (?, ?)") == (
        "SELECT * FROM jobs WHERE a = $1 AND b IN ($2, $3)"
    )
    assert sql.numbered(sql.ACTIVE_SINCE + sql.AND_USER).endswith(
        f"created_at >= ${len(sql.ACTIVE) + 1} AND user_id = ${len(sql.ACTIVE) + 2}"
    )
    assert "?" not in sql.numbered(sql.UPSERT_JOB) and "$1" in sql.numbered(sql.UPSERT_JOB)


def test_every_shared_statement_is_valid_sqlite():
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    statements = {name: value for name, value in vars(sql).items() if name.isupper() and isinstance(value, str)}
    statements["KNOWN_JOBS_3"] = sql.known_jobs(3)
    checked = 0
    for name, statement in statements.items():
        if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE")):
            continue  # the state values (QUEUED, ...) and the fragments (AND_USER, BY_AGE)
        try:
            conn.execute("EXPLAIN " + statement, [None] * statement.count("?"))  # parses and plans it
        except sqlite3.Error as exc:
            raise AssertionError(f"{name}: {exc}") from exc
        checked += 1
    assert checked >= 20
