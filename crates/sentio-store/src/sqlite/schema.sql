CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS devices (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    labels            TEXT NOT NULL,
    secret_digest     BLOB NOT NULL,
    created_ms        INTEGER NOT NULL,
    last_seen_ms      INTEGER,
    rejected_count    INTEGER NOT NULL DEFAULT 0,
    last_rejection    TEXT,
    last_rejection_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    UNIQUE (device, metric)
);

CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS alerts (
    id                INTEGER PRIMARY KEY,
    device            TEXT NOT NULL,
    metric            TEXT NOT NULL,
    state             TEXT NOT NULL,
    opened_ms         INTEGER NOT NULL,
    last_anomaly_ms   INTEGER NOT NULL,
    resolved_ms       INTEGER,
    anomalous_points  INTEGER NOT NULL,
    explanation       TEXT NOT NULL,
    peak              TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_device ON alerts (device, id);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, id);

CREATE TABLE IF NOT EXISTS detector_state (
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    state  TEXT NOT NULL,
    PRIMARY KEY (device, metric)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS alert_feedback (
    alert_id INTEGER PRIMARY KEY,
    feedback TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    acl           TEXT NOT NULL,
    secret_digest BLOB NOT NULL,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;
