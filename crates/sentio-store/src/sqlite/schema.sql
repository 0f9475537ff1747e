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

-- The durable head (head.rs): per committed append and series, that append's points of the
-- series packed in one blob (strictly increasing timestamps). Keyed by the append's commit seq
-- first, so an append writes its rows at the end of the b-tree (a few pages), not one page per
-- series. Across blobs the higher seq wins on an equal timestamp. The per-series index is the
-- connection's in-memory table `temp.head_index`, rebuilt from this one at open. An older
-- directory's `head` (keyed by series) or row-per-point `points` is moved into this at open.
CREATE TABLE IF NOT EXISTS head_log (
    seq       INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (seq, series_id)
) WITHOUT ROWID;

-- Sealed, compressed runs of points (see chunk.rs); `head_log` above is the durable head.
-- Per series, chunk ranges [start_ts, end_ts] never overlap. A rowid table, not WITHOUT ROWID:
-- a WITHOUT ROWID row keeps at most ~1 KB on its 4 KB page and spills the rest of a ~1.1 KB
-- chunk to an overflow page of its own (measured: 4.4 instead of 1.3 bytes per point).
-- The unique key is the chunk index; a second index covers the statistics, so that scanning
-- a month of chunk statistics never reads the data pages.
CREATE TABLE IF NOT EXISTS chunks (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    start_ts  INTEGER NOT NULL,
    end_ts    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    sum       REAL NOT NULL,
    first     REAL NOT NULL,
    last      REAL NOT NULL,
    data      BLOB NOT NULL,
    UNIQUE (series_id, start_ts)
);
CREATE INDEX IF NOT EXISTS chunk_stats
    ON chunks (series_id, start_ts, end_ts, count, min, max, sum, first, last);

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

-- How people handled an alert: who acknowledged it and when, who resolved it by hand.
CREATE TABLE IF NOT EXISTS alert_handling (
    alert_id    INTEGER PRIMARY KEY,
    ack_by      TEXT,
    ack_ms      INTEGER,
    resolved_by TEXT,
    silenced_by INTEGER
);

-- Notes on alerts, in the order written.
CREATE TABLE IF NOT EXISTS alert_comments (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    author   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    text     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_comments_by_alert ON alert_comments (alert_id, id);

-- Text readings, kept as events: the newest EVENT_HISTORY per device and metric.
CREATE TABLE IF NOT EXISTS events (
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    ts     INTEGER NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (device, metric, ts)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    acl           TEXT NOT NULL,
    secret_digest BLOB NOT NULL,
    created_ms    INTEGER NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '[]'  -- JSON array of HTTP scopes (sqlite/tokens.rs)
) WITHOUT ROWID;

-- Rollups (see sqlite/rollup.rs): per series, one row per 1-minute and per 1-hour bucket with
-- the bucket's statistics; `first_off`/`last_off` are the first and last point's offsets (ms)
-- inside the bucket. Kept longer than raw points; queries use them where raw has expired.
CREATE TABLE IF NOT EXISTS rollup_1m (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    first     REAL NOT NULL,
    last      REAL NOT NULL,
    first_off INTEGER NOT NULL,
    last_off  INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    first     REAL NOT NULL,
    last      REAL NOT NULL,
    first_off INTEGER NOT NULL,
    last_off  INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

-- Settled 1-minute rollups, packed (sqlite/rollup_pack.rs): one row per series and day, the
-- day's settled `rows` as pco-compressed columns. A minute is either here or in rollup_1m.
CREATE TABLE IF NOT EXISTS rollup_1m_days (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    day       INTEGER NOT NULL,
    rows      INTEGER NOT NULL,
    data      BLOB NOT NULL,
    UNIQUE (series_id, day)
);

-- Per series: every 1-minute bucket before `rolled_until` is in the rollups; every raw point
-- before `raw_before` has expired (except late arrivals, folded into the rollups and removed by
-- the next pass); 1-minute rollups before `m1_before` and 1-hour ones before `h1_before` have
-- expired too.
CREATE TABLE IF NOT EXISTS series_marks (
    series_id    INTEGER PRIMARY KEY,
    rolled_until INTEGER,
    raw_before   INTEGER NOT NULL DEFAULT -9223372036854775808,
    m1_before    INTEGER NOT NULL DEFAULT -9223372036854775808,
    h1_before    INTEGER NOT NULL DEFAULT -9223372036854775808
);

-- 1-minute buckets that received a point after they were rolled up (late points).
CREATE TABLE IF NOT EXISTS rollup_dirty (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

-- The audit log: who changed what, when. An erased device's entries keep only a keyed digest of
-- its id (`subject_digest`), so the log proves the erasure without keeping the device's data.
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    subject_digest TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject);
CREATE INDEX IF NOT EXISTS audit_subject_digest ON audit (subject_digest);

-- Users' rules, each its stored form (`stored_form::RuleV1`, JSON with "v": 1).
CREATE TABLE IF NOT EXISTS rules (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
-- Commands to devices (sqlite/commands.rs): `seq` orders a device's commands (delivery order);
-- `params` and `reply` are JSON.
CREATE TABLE IF NOT EXISTS commands (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    device       TEXT NOT NULL,
    name         TEXT NOT NULL,
    params       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    delivered_ms INTEGER,
    replied_ms   INTEGER,
    reply        TEXT,
    -- 1 for a command an edge adopted from its cloud (reported up); 0 for the node's own.
    upstream     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS commands_device ON commands (device, seq);
CREATE INDEX IF NOT EXISTS commands_open ON commands (expires_ms) WHERE state IN ('pending', 'delivered');
-- Devices' twins (sqlite/twins.rs): both documents as JSON objects, the desired one versioned.
CREATE TABLE IF NOT EXISTS twins (
    device      TEXT PRIMARY KEY,
    desired     TEXT NOT NULL,
    reported    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    desired_ms  INTEGER,
    reported_ms INTEGER,
    -- On an edge: the cloud's version of the desired document applied last (the cloud sets it).
    upstream_version INTEGER
) WITHOUT ROWID;
-- People (sqlite/users.rs): a password only as its Argon2id PHC hash; a session only as the keyed
-- digest of its id and the digest of its CSRF token, removed with its user.
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    scope         TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    digest      BLOB PRIMARY KEY,
    user        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_digest BLOB NOT NULL,
    expires_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
-- Personal API tokens (sqlite/user_tokens.rs): the secret only as its keyed digest; removed
-- with their user, refused while it is disabled.
CREATE TABLE IF NOT EXISTS user_tokens (
    id          TEXT PRIMARY KEY,
    user        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    digest      BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    UNIQUE (user, name)
) WITHOUT ROWID;

-- The edge's outbox (sqlite/outbox.rs), written only once the node is an edge: one row per
-- committed append, in the append's transaction. `spans` names its points (per series: id,
-- first and last timestamp, count; 28 bytes each, little-endian); the points themselves stay
-- in `points`/`chunks`. Rows up to the acknowledged seq are removed. AUTOINCREMENT: a seq is
-- never reused within this database, even after its row is gone. `lane`: 'points' (live) or
-- 'backlog', chosen at commit, or 'rollups' (minutes rolled up, spans of buckets, written in
-- the rollup's transaction when `meta.outbox_rollups` is set) (a database made before lanes gets the column at open, with
-- the index `outbox_lane` on (lane, seq)).
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    committed_ms INTEGER NOT NULL,
    points       INTEGER NOT NULL,
    spans        BLOB NOT NULL,
    lane         TEXT NOT NULL DEFAULT 'points'
);
-- Per lane: every batch up to `acked_seq` is held by the cloud.
CREATE TABLE IF NOT EXISTS outbox_acked (
    lane      TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL,
    acked_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Per lane, what the edge's outbox has taken in and what became of it (sqlite/outbox_counts.rs),
-- in the transactions that change it: points (rollups: rows) accepted, delivered (acknowledged),
-- degraded (replaced by their minute rollups under the disk budget) and dropped (removed
-- undelivered). Invariant: accepted = delivered + degraded + dropped + the pending rows' points.
CREATE TABLE IF NOT EXISTS outbox_counts (
    lane      TEXT PRIMARY KEY,
    accepted  INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    degraded  INTEGER NOT NULL DEFAULT 0,
    dropped   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Edge nodes registered in this (cloud) node, and how far each incarnation and lane of each
-- was applied; a batch and its progress row are committed in one transaction.
CREATE TABLE IF NOT EXISTS edges (
    id            TEXT PRIMARY KEY,
    secret_digest BLOB NOT NULL,
    created_ms    INTEGER NOT NULL,
    policy        TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge_progress (
    edge        TEXT NOT NULL REFERENCES edges (id) ON DELETE CASCADE,
    incarnation BLOB NOT NULL,
    lane        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    part        INTEGER NOT NULL,
    points      INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (edge, incarnation, lane)
) WITHOUT ROWID;
-- Series whose 1-minute rollups before `until` came from an edge with the aggregates policy
-- (sqlite/edges.rs): reads answer that range from the rollups, as if its raw points had
-- expired (the raw points sent around its alerts stay readable as raw).
CREATE TABLE IF NOT EXISTS edge_rollup_cover (
    series_id INTEGER PRIMARY KEY,
    until     INTEGER NOT NULL
);
-- Devices an edge registered here (its registry going up): the device row is in `devices`.
-- Alerts of an edge held here: the edge's alert id and this node's copy in `alerts`.
CREATE TABLE IF NOT EXISTS edge_alerts (
    edge          TEXT NOT NULL REFERENCES edges (id) ON DELETE CASCADE,
    edge_alert_id INTEGER NOT NULL,
    alert_id      INTEGER NOT NULL,
    PRIMARY KEY (edge, edge_alert_id)
) WITHOUT ROWID;
-- Re-sync runs of edges (sqlite/resync.rs): each part the edge sends is applied with its
-- points in one transaction, once (`parts` applied so far, consecutive).
CREATE TABLE IF NOT EXISTS edge_resyncs (
    id              INTEGER PRIMARY KEY,
    edge            TEXT NOT NULL REFERENCES edges (id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    from_ms         INTEGER NOT NULL,
    to_ms           INTEGER NOT NULL,
    hours_compared  INTEGER NOT NULL DEFAULT 0,
    hours_differing INTEGER NOT NULL DEFAULT 0,
    points          INTEGER NOT NULL DEFAULT 0,
    parts           INTEGER NOT NULL DEFAULT 0,
    started_ms      INTEGER NOT NULL,
    finished_ms     INTEGER,
    error           TEXT,
    rollup_rows     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS edge_resyncs_edge ON edge_resyncs (edge, id);
CREATE TABLE IF NOT EXISTS edge_devices (
    device TEXT PRIMARY KEY,
    edge   TEXT NOT NULL REFERENCES edges (id) ON DELETE CASCADE
) WITHOUT ROWID;
-- Silences: the alerts their matcher covers notify nobody until `until_ms`.
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY,
    matcher    TEXT NOT NULL,
    until_ms   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

-- Notification channels, with their delivery counters.
CREATE TABLE IF NOT EXISTS channels (
    name          TEXT PRIMARY KEY,
    target        TEXT NOT NULL,
    matcher       TEXT,
    delivered     INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_error_ms INTEGER
) WITHOUT ROWID;

-- Notifications not yet delivered (`failed` = 1: given up). A delivered one is deleted in the
-- transaction that counts it, so it is never offered again.
CREATE TABLE IF NOT EXISTS notify_outbox (
    id         INTEGER PRIMARY KEY,
    channel    TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_ms    INTEGER NOT NULL,
    failed     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (failed, next_ms, id);

-- Alerts that opened together, notified as one.
CREATE TABLE IF NOT EXISTS alert_groups (
    id          INTEGER PRIMARY KEY,
    alert_kind  TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    members     TEXT NOT NULL
);

-- The AI engine's expected band (see sqlite/band.rs): per series and 1-minute bucket, the
-- count-weighted mean of the expected values it scored, the lowest lower and highest upper
-- bound. Derived data, written by the detect stage; expires with the 1-minute rollups.
CREATE TABLE IF NOT EXISTS band_1m (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    expected  REAL NOT NULL,
    lower     REAL NOT NULL,
    upper     REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
