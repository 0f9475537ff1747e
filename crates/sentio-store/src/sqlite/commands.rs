//! `CommandStore` on SQLite: one row per command, `seq` its place in its device's order. The
//! bound on open commands is checked in the transaction that adds one, so concurrent senders
//! cannot pass it together.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use sentio_core::{Command, CommandId, CommandState, DeviceId};

use super::SqliteStore;
use crate::{CommandStore, Result, StoreError};

const COLUMNS: &str =
    "id, device, name, params, created_ms, expires_ms, state, delivered_ms, replied_ms, reply";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("command: {what}"))
}

/// The raw columns of a row, read inside the blocking task.
type RawRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn command(row: RawRow) -> Result<Command> {
    let (id, device, name, params, created_ms, expires_ms, state, delivered_ms, replied_ms, reply) =
        row;
    let json = |s: &str| serde_json::from_str(s).map_err(|e| corrupt(&e.to_string()));
    Ok(Command {
        id: CommandId::parse(&id).map_err(|e| corrupt(&e.to_string()))?,
        device: DeviceId::parse(&device).map_err(|e| corrupt(&e.to_string()))?,
        name,
        params: json(&params)?,
        created_ms,
        expires_ms,
        state: CommandState::parse(&state).ok_or_else(|| corrupt(&state))?,
        delivered_ms,
        replied_ms,
        reply: reply.as_deref().map(json).transpose()?,
    })
}

fn one(conn: &rusqlite::Connection, device: &str, id: &str) -> Result<Option<Command>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM commands WHERE device = ?1 AND id = ?2"),
            params![device, id],
            raw,
        )
        .optional()?;
    row.map(command).transpose()
}

fn many(conn: &rusqlite::Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Command>> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st
        .query_map(p, raw)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(command).collect()
}

/// Marks the commands an edge adopted from its cloud, in a database made before the mark.
pub(super) fn add_upstream_column(conn: &rusqlite::Connection) -> Result<()> {
    super::add_column_if_missing(conn, "commands", "upstream", "INTEGER NOT NULL DEFAULT 0")
}

/// Inserts `c` (the cloud's when `upstream`) unless its id is known; whether it was inserted.
fn insert(conn: &rusqlite::Connection, c: &Command, upstream: bool) -> Result<bool> {
    let n = conn.execute(
        &format!(
            "INSERT INTO commands ({COLUMNS}, upstream) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING"
        ),
        params![
            c.id.as_str(),
            c.device.as_str(),
            c.name,
            c.params.to_string(),
            c.created_ms,
            c.expires_ms,
            c.state.as_str(),
            c.delivered_ms,
            c.replied_ms,
            c.reply.as_ref().map(|r| r.to_string()),
            upstream,
        ],
    )?;
    Ok(n == 1)
}

#[async_trait]
impl CommandStore for SqliteStore {
    async fn add_command(&self, c: &Command, max_open: usize) -> Result<bool> {
        let c = c.clone();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let open: i64 = tx.query_row(
                "SELECT count(*) FROM commands WHERE device = ?1 AND state IN ('pending', 'delivered')",
                [c.device.as_str()],
                |r| r.get(0),
            )?;
            if open as usize >= max_open {
                return Ok(false);
            }
            insert(&tx, &c, false)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn adopt_command(&self, c: &Command) -> Result<bool> {
        let c = c.clone();
        self.with_conn(move |_, conn| insert(conn, &c, true)).await
    }

    async fn get_command(&self, device: &DeviceId, id: &CommandId) -> Result<Option<Command>> {
        let (device, id) = (device.to_string(), id.to_string());
        self.with_conn(move |_, conn| one(conn, &device, &id)).await
    }

    async fn list_commands(&self, device: &DeviceId, limit: usize) -> Result<Vec<Command>> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            many(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM commands WHERE device = ?1 ORDER BY seq DESC LIMIT ?2"
                ),
                params![device, limit as i64],
            )
        })
        .await
    }

    async fn pending_commands(&self, device: &DeviceId) -> Result<Vec<Command>> {
        let device = device.to_string();
        self.with_conn(move |_, conn| {
            many(
                conn,
                &format!("SELECT {COLUMNS} FROM commands WHERE device = ?1 AND state = 'pending' ORDER BY seq"),
                [device],
            )
        })
        .await
    }

    async fn mark_delivered(
        &self,
        device: &DeviceId,
        id: &CommandId,
        at_ms: i64,
    ) -> Result<Option<Command>> {
        let (device, id) = (device.to_string(), id.to_string());
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "UPDATE commands SET state = 'delivered', delivered_ms = ?3 \
                 WHERE device = ?1 AND id = ?2 AND state = 'pending'",
                params![device, id, at_ms],
            )?;
            if n == 0 {
                return Ok(None);
            }
            one(conn, &device, &id)
        })
        .await
    }

    async fn record_reply(
        &self,
        device: &DeviceId,
        id: &CommandId,
        state: CommandState,
        reply: &serde_json::Value,
        at_ms: i64,
    ) -> Result<Option<Command>> {
        let (device, id, reply) = (device.to_string(), id.to_string(), reply.to_string());
        self.with_conn(move |_, conn| {
            let n = conn.execute(
                "UPDATE commands SET \
                   state = CASE WHEN state IN ('pending', 'delivered') THEN ?3 ELSE state END, \
                   replied_ms = ?4, reply = ?5 \
                 WHERE device = ?1 AND id = ?2 AND replied_ms IS NULL",
                params![device, id, state.as_str(), at_ms, reply],
            )?;
            if n == 0 {
                return Ok(None);
            }
            one(conn, &device, &id)
        })
        .await
    }

    async fn expire_commands(&self, now_ms: i64) -> Result<Vec<Command>> {
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let mut due = many(
                &tx,
                &format!(
                    "SELECT {COLUMNS} FROM commands WHERE state IN ('pending', 'delivered') \
                     AND expires_ms <= ?1 ORDER BY seq"
                ),
                [now_ms],
            )?;
            if !due.is_empty() {
                tx.execute(
                    "UPDATE commands SET state = 'expired' \
                     WHERE state IN ('pending', 'delivered') AND expires_ms <= ?1",
                    [now_ms],
                )?;
                tx.commit()?;
            }
            for c in &mut due {
                c.state = CommandState::Expired;
            }
            Ok(due)
        })
        .await
    }

    async fn upstream_commands(&self, limit: usize) -> Result<Vec<Command>> {
        self.with_conn(move |_, conn| {
            many(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM commands WHERE upstream = 1 ORDER BY seq DESC LIMIT ?1"
                ),
                [limit as i64],
            )
        })
        .await
    }
}
