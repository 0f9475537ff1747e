//! `NotifyStore` on SQLite: silences, channels, the outbox and alert groups.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use sentio_core::{AlertKind, Channel, Silence};

use super::SqliteStore;
use crate::{
    AlertGroup, ChannelStats, NewMessage, NewSilence, NotifyStore, OutboxMessage, Result,
    StoreError, stored_form,
};

/// An erasure's part here: the notifications that name the device (a group's too, with its
/// other members: a body is sent whole or not at all), its place in alert groups, the
/// silences that name it (left without it, one would mute more than it was made for), and its
/// place in channel routes: a route left naming no device routes nothing (the channel keeps
/// the alerts of rules that name it), since an empty device list would mean every device.
pub(super) fn erase_device(tx: &rusqlite::Transaction<'_>, device: &str) -> rusqlite::Result<()> {
    let quoted = serde_json::to_string(device).expect("strings serialise");
    tx.execute(
        "DELETE FROM notify_outbox WHERE instr(body, ?1) > 0",
        [format!("\"device\":{quoted}")],
    )?;
    tx.execute(
        "UPDATE alert_groups SET members = (SELECT json_group_array(json(m.value)) \
         FROM json_each(alert_groups.members) m WHERE json_extract(m.value, '$[1]') != ?1) \
         WHERE EXISTS (SELECT 1 FROM json_each(alert_groups.members) m \
         WHERE json_extract(m.value, '$[1]') = ?1)",
        [device],
    )?;
    tx.execute(
        "DELETE FROM silences WHERE EXISTS \
         (SELECT 1 FROM json_each(silences.matcher, '$.devices') d WHERE d.value = ?1)",
        [device],
    )?;
    tx.execute(
        "UPDATE channels SET matcher = CASE \
         WHEN (SELECT count(*) FROM json_each(channels.matcher, '$.devices') d \
               WHERE d.value != ?1) = 0 THEN NULL \
         ELSE json_set(channels.matcher, '$.devices', json((SELECT json_group_array(d.value) \
              FROM json_each(channels.matcher, '$.devices') d WHERE d.value != ?1))) END \
         WHERE EXISTS (SELECT 1 FROM json_each(channels.matcher, '$.devices') d \
         WHERE d.value = ?1)",
        [device],
    )?;
    Ok(())
}

fn corrupt(what: &str, id: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} {id}"))
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn create_silence(&self, new: NewSilence) -> Result<Silence> {
        self.with_conn(move |_, conn| {
            conn.execute(
                "INSERT INTO silences (matcher, until_ms, reason, author, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    stored_form::matcher_json(&new.matcher),
                    new.until_ms,
                    new.reason,
                    new.author,
                    new.created_ms
                ],
            )?;
            Ok(Silence {
                id: conn.last_insert_rowid(),
                matcher: new.matcher,
                until_ms: new.until_ms,
                reason: new.reason,
                author: new.author,
                created_ms: new.created_ms,
            })
        })
        .await
    }

    async fn silences(&self) -> Result<Vec<Silence>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, matcher, until_ms, reason, author, created_ms FROM silences \
                 ORDER BY id DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, matcher, until_ms, reason, author, created_ms) = row?;
                Ok(Silence {
                    id,
                    matcher: stored_form::read_matcher(&matcher)
                        .map_err(|_| corrupt("matcher of silence", id))?,
                    until_ms,
                    reason,
                    author,
                    created_ms,
                })
            })
            .collect()
        })
        .await
    }

    async fn delete_silence(&self, id: i64) -> Result<bool> {
        self.with_conn(move |_, conn| {
            Ok(conn.execute("DELETE FROM silences WHERE id = ?1", [id])? == 1)
        })
        .await
    }

    async fn mark_silenced(&self, alert_id: i64, silence_id: i64) -> Result<()> {
        self.with_conn(move |_, conn| {
            conn.execute(
                "INSERT INTO alert_handling (alert_id, silenced_by) VALUES (?1, ?2) \
                 ON CONFLICT (alert_id) DO UPDATE SET silenced_by = excluded.silenced_by",
                params![alert_id, silence_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_channel(&self, channel: &Channel) -> Result<bool> {
        let name = channel.name.clone();
        let target = stored_form::target_json(&channel.target);
        let matcher = channel.route.as_ref().map(stored_form::matcher_json);
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let existed = tx
                .query_row(
                    "SELECT 1 FROM channels WHERE name = ?1",
                    [&name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            tx.execute(
                "INSERT INTO channels (name, target, matcher) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET target = excluded.target, \
                 matcher = excluded.matcher",
                params![name, target, matcher],
            )?;
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<Channel>> {
        self.with_conn(move |_, conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, target, matcher FROM channels ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            rows.map(|row| {
                let (name, target, matcher) = row?;
                let route = match matcher {
                    Some(m) => Some(
                        stored_form::read_matcher(&m)
                            .map_err(|_| corrupt("route of channel", &name))?,
                    ),
                    None => None,
                };
                Ok(Channel {
                    target: stored_form::read_target(&target)
                        .map_err(|_| corrupt("target of channel", &name))?,
                    route,
                    name,
                })
            })
            .collect()
        })
        .await
    }

    async fn delete_channel(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM notify_outbox WHERE channel = ?1", [&name])?;
            let n = tx.execute("DELETE FROM channels WHERE name = ?1", [&name])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn channel_stats(&self) -> Result<Vec<ChannelStats>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.name, c.delivered, c.last_error_ms, c.last_error, \
                 (SELECT COUNT(*) FROM notify_outbox o WHERE o.channel = c.name AND o.failed = 0), \
                 (SELECT COUNT(*) FROM notify_outbox o WHERE o.channel = c.name AND o.failed = 1) \
                 FROM channels c ORDER BY c.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let at: Option<i64> = r.get(2)?;
                let error: Option<String> = r.get(3)?;
                Ok(ChannelStats {
                    name: r.get(0)?,
                    delivered: r.get::<_, i64>(1)? as u64,
                    last_error: at.zip(error),
                    pending: r.get::<_, i64>(4)? as u64,
                    failed: r.get::<_, i64>(5)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn enqueue(&self, messages: Vec<NewMessage>) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO notify_outbox (channel, msg_id, body, created_ms, next_ms) \
                     SELECT name, ?2, ?3, ?4, ?4 FROM channels WHERE name = ?1",
                )?;
                for m in &messages {
                    stmt.execute(params![m.channel, m.msg_id, m.body, m.created_ms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn due_messages(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxMessage>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, channel, msg_id, body, created_ms, attempts FROM notify_outbox \
                 WHERE failed = 0 AND next_ms <= ?1 ORDER BY next_ms, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok(OutboxMessage {
                    id: r.get(0)?,
                    message: NewMessage {
                        channel: r.get(1)?,
                        msg_id: r.get(2)?,
                        body: r.get(3)?,
                        created_ms: r.get(4)?,
                    },
                    attempts: r.get::<_, i64>(5)? as u32,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delivered(&self, id: i64) -> Result<()> {
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE channels SET delivered = delivered + 1 \
                 WHERE name = (SELECT channel FROM notify_outbox WHERE id = ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM notify_outbox WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn attempt_failed(
        &self,
        id: i64,
        error: &str,
        at_ms: i64,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE channels SET last_error = ?2, last_error_ms = ?3 \
                 WHERE name = (SELECT channel FROM notify_outbox WHERE id = ?1)",
                params![id, error, at_ms],
            )?;
            tx.execute(
                "UPDATE notify_outbox SET attempts = attempts + 1, next_ms = coalesce(?2, next_ms), \
                 failed = ?3 WHERE id = ?1",
                params![id, retry_at, retry_at.is_none()],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn save_group(&self, group: &AlertGroup) -> Result<i64> {
        let g = group.clone();
        self.with_conn(move |_, conn| {
            let members = serde_json::to_string(&g.members).expect("members serialise");
            conn.execute(
                "INSERT INTO alert_groups (alert_kind, device_kind, opened_ms, members) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![g.alert_kind.as_str(), g.device_kind, g.opened_ms, members],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn groups(&self, limit: usize) -> Result<Vec<AlertGroup>> {
        self.with_conn(move |_, conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, alert_kind, device_kind, opened_ms, members FROM alert_groups \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (id, kind, device_kind, opened_ms, members) = row?;
                Ok(AlertGroup {
                    id,
                    alert_kind: AlertKind::parse(&kind)
                        .ok_or_else(|| corrupt("kind of group", id))?,
                    device_kind,
                    opened_ms,
                    members: serde_json::from_str(&members)
                        .map_err(|_| corrupt("members of group", id))?,
                })
            })
            .collect()
        })
        .await
    }
}
