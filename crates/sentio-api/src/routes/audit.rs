//! The audit log: `GET /api/v1/audit?action=&device=&limit=&before=`, newest first; the next
//! page is `before=<the last id seen>`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::dto::AuditEntryView;
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    action: Option<String>,
    /// A device or token id; also finds an erased device's entries (by its keyed digest).
    device: Option<String>,
    limit: Option<usize>,
    /// Only entries with a smaller id.
    before: Option<i64>,
}

pub async fn list(
    _: Admin,
    State(s): State<AppState>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_LIMIT}"
        )));
    }
    let entries = s
        .audit
        .audit(sentio_store::AuditFilter {
            action: p.action,
            subject: p.device,
            before: p.before,
            limit,
        })
        .await?;
    let entries: Vec<AuditEntryView> = entries.iter().map(AuditEntryView::from).collect();
    Ok(Json(json!({ "entries": entries })))
}
