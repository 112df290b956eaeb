"""The index's schema as a list of forward migrations.

``meta.schema_version`` says how many have run; opening an index runs the missing ones in
one transaction each. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

MIGRATIONS: list[str] = [
    # 1: resources, their attribute history, metrics, policies, tokens, source health.
    """
    CREATE TABLE resource_types (
        name TEXT PRIMARY KEY,
        attributes TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'active'
    );
    CREATE TABLE resources (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL REFERENCES resource_types(name),
        original_resource_id TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        started_at REAL NOT NULL,
        ended_at REAL,
        revision_start REAL NOT NULL,
        creator TEXT NOT NULL DEFAULT 'appliance',
        project_id TEXT,
        user_id TEXT
    );
    CREATE INDEX resources_type ON resources(type, id);
    CREATE TABLE resource_history (
        resource_id TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        attributes TEXT NOT NULL,
        ended_at REAL,
        revision_start REAL NOT NULL,
        revision_end REAL NOT NULL
    );
    CREATE INDEX resource_history_resource ON resource_history(resource_id, revision_start);
    CREATE TABLE archive_policies (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        aggregation_methods TEXT NOT NULL,
        back_window INTEGER NOT NULL DEFAULT 0,
        builtin INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE archive_policy_rules (
        name TEXT PRIMARY KEY,
        metric_pattern TEXT NOT NULL,
        archive_policy_name TEXT NOT NULL REFERENCES archive_policies(name)
    );
    CREATE TABLE metrics (
        id TEXT PRIMARY KEY,
        name TEXT,
        unit TEXT,
        kind TEXT NOT NULL DEFAULT 'gauge',
        resource_id TEXT REFERENCES resources(id) ON DELETE CASCADE,
        archive_policy_name TEXT NOT NULL REFERENCES archive_policies(name),
        created_at REAL NOT NULL,
        creator TEXT NOT NULL DEFAULT 'appliance'
    );
    CREATE UNIQUE INDEX metrics_resource_name ON metrics(resource_id, name)
        WHERE resource_id IS NOT NULL;
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE source_status (
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        last_attempt REAL NOT NULL,
        last_success REAL,
        duration REAL NOT NULL,
        samples INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        polls INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        detail TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (source, target)
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2 (alarms): alarms (definition as JSON, state as columns) and their history, which
    # outlives a deleted alarm as in Aodh.
    """
    CREATE TABLE alarms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        definition TEXT NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT NOT NULL,
        state_timestamp REAL NOT NULL,
        timestamp REAL NOT NULL
    );
    CREATE TABLE alarm_history (
        event_id TEXT PRIMARY KEY,
        alarm_id TEXT NOT NULL,
        type TEXT NOT NULL,
        detail TEXT NOT NULL,
        severity TEXT NOT NULL,
        timestamp REAL NOT NULL
    );
    CREATE INDEX alarm_history_alarm ON alarm_history(alarm_id, timestamp);
    """,
    # 3: a counter bumped by every update or deletion another process may hold in a cache.
    """
    CREATE TABLE cache_epoch (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO cache_epoch VALUES (1, 0);
    """,
    # 4 (events): things that happened to a resource at an instant (SNMP traps), with their
    # details as JSON traits, as Aodh's event alarms see them; kept apart from attribute
    # history, which records state.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp REAL NOT NULL,
        event_type TEXT NOT NULL,
        resource_id TEXT,
        source TEXT NOT NULL,
        traits TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_time ON events(timestamp);
    CREATE INDEX events_resource ON events(resource_id, timestamp);
    """,
    # 5 (snmp targets): SNMP targets added at run time (discovery, the API) beside the
    # configured ones; ``definition`` is the target's config mapping, secrets included (as
    # in the config file), and is never returned by the API.
    """
    CREATE TABLE snmp_targets (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        origin TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 6 (retention): metrics whose RRD file awaits its archive policy's new layout (a policy
    # changed in use); a row goes once its file is rebuilt, so an interrupted rebuild resumes.
    """
    CREATE TABLE policy_rebuilds (
        metric_id TEXT PRIMARY KEY,
        policy_name TEXT NOT NULL,
        queued_at REAL NOT NULL
    );
    """,
]


class SchemaTooNew(RuntimeError):
    """The index was written by a newer appliance: this one must not touch it."""


def current_version(db: sqlite_utils.Database) -> int:
    meta = db.table("meta")
    meta.create({"key": str, "value": str}, pk="key", not_null={"value"}, if_not_exists=True)
    rows = list(meta.rows_where("key = ?", ["schema_version"]))
    return int(rows[0]["value"]) if rows else 0


def _version_read(conn: sqlite3.Connection) -> int | None:
    """The schema version, or None if the index has no meta table yet."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


def migrate(db: sqlite_utils.Database) -> int:
    """Run the migrations this file has not seen yet; return the resulting version.

    ``BEGIN IMMEDIATE`` makes concurrent openers (API workers, pollsters starting together)
    wait for each other instead of running a migration twice.
    """
    conn = db.conn
    if _version_read(conn) == len(MIGRATIONS):
        # Up to date, as every opener but the first finds it: one plain read, without the
        # write lock or sqlite-utils' table checks (each process opening the index ran
        # those, 0.5 MB of pages copied from the parent it was forked from).
        return len(MIGRATIONS)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(db)
        if version > len(MIGRATIONS):
            raise SchemaTooNew(
                f"index schema version {version} is newer than this appliance knows "
                f"({len(MIGRATIONS)}): it was written by a newer version; refusing to "
                f"downgrade (run that version, or restore a backup made by this one)"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            db.table("meta").upsert({"key": "schema_version", "value": str(number)}, pk="key")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
