//! `RuleStore` on SQLite: one row per rule, its stored form as JSON.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use sentio_core::{Rule, RuleId};

use super::SqliteStore;
use crate::{Result, RuleStore, StoreError, stored_form};

fn read(json: &str) -> Result<Rule> {
    stored_form::read_rule(json).map_err(|e| StoreError::Corrupt(format!("rule: {e}")))
}

#[async_trait]
impl RuleStore for SqliteStore {
    async fn put_rule(&self, rule: &Rule) -> Result<bool> {
        let id = rule.id.to_string();
        let body = stored_form::rule_json(rule);
        self.with_conn(move |_, conn| {
            let tx = conn.transaction()?;
            let existed = tx
                .query_row("SELECT 1 FROM rules WHERE id = ?1", params![id], |_| Ok(()))
                .optional()?
                .is_some();
            tx.execute(
                "INSERT INTO rules (id, body) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )?;
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    async fn get_rule(&self, id: &RuleId) -> Result<Option<Rule>> {
        let id = id.to_string();
        let body: Option<String> = self
            .with_conn(move |_, conn| {
                Ok(conn
                    .query_row("SELECT body FROM rules WHERE id = ?1", params![id], |r| {
                        r.get(0)
                    })
                    .optional()?)
            })
            .await?;
        body.as_deref().map(read).transpose()
    }

    async fn list_rules(&self) -> Result<Vec<Rule>> {
        let bodies: Vec<String> = self
            .with_conn(|_, conn| {
                let mut st = conn.prepare_cached("SELECT body FROM rules ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await?;
        bodies.iter().map(|b| read(b)).collect()
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<bool> {
        let id = id.to_string();
        self.with_conn(move |_, conn| {
            Ok(conn.execute("DELETE FROM rules WHERE id = ?1", params![id])? > 0)
        })
        .await
    }
}
