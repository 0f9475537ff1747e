//! Users' rules: `/api/v1/rules`. Every change is checked (a rule that does not compile is
//! refused with 422 and where), stored, and then put in force by the detect stage before the
//! answer ([`sentio_pipeline::Control::reload_rules`]).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sentio_core::{Rule, RuleId};
use sentio_pipeline::rules::compile;
use sentio_pipeline::rules::replay::{self, ReplayDevice};
use serde_json::{Value, json};

use crate::auth::{Actor, Operator};
use crate::dto::{RangeParams, RuleBody, RuleList, RuleView};
use crate::{ApiError, AppState};

fn rule_id(id: &str) -> Result<RuleId, ApiError> {
    RuleId::parse(id).map_err(|e| ApiError::not_found(e.to_string()))
}

async fn stored(s: &AppState, id: &RuleId) -> Result<Rule, ApiError> {
    s.rules
        .get_rule(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rule {id}")))
}

/// Compiles (checks) the rule, stores it and puts it in force.
async fn save(
    s: &AppState,
    actor: &Actor,
    rule: Rule,
    action: &str,
) -> Result<Json<RuleView>, ApiError> {
    let rule = compile(rule)?.rule;
    s.rules.put_rule(&rule).await?;
    s.control.reload_rules().await?;
    s.notifier.reload();
    tracing::info!(rule = %rule.id, enabled = rule.enabled, "rule saved ({action})");
    s.audit_by(
        actor,
        action,
        Some(rule.id.as_str()),
        json!({"name": rule.name, "enabled": rule.enabled, "condition": rule.condition}),
    )
    .await;
    Ok(Json(RuleView::from(&rule)))
}

/// `POST /api/v1/rules`: 201 with the rule; 409 if its id is taken; 422 if it is invalid.
pub async fn create(
    Operator(actor): Operator,
    State(s): State<AppState>,
    body: Result<Json<RuleBody>, JsonRejection>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    actor.fleet_wide()?;
    let Json(body) = body?;
    let id = body.id.clone().ok_or_else(|| {
        ApiError::from(sentio_pipeline::rules::RuleError {
            field: "id",
            message: "give the rule an id (a-z 0-9 _ -)".into(),
            position: None,
        })
    })?;
    let rule = body.into_rule(&id)?;
    if s.rules.get_rule(&rule.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("rule {id} already exists; PUT /api/v1/rules/{id} replaces it"),
        ));
    }
    Ok((
        StatusCode::CREATED,
        save(&s, &actor, rule, "rule.create").await?,
    ))
}

/// `GET /api/v1/rules`: every rule, by id, each `ok` or `failing` (with why).
pub async fn list(
    Operator(actor): Operator,
    State(s): State<AppState>,
) -> Result<Json<RuleList>, ApiError> {
    actor.fleet_wide()?;
    let rules = s.rules.list_rules().await?;
    let reports = s.control.rule_reports(None).await?;
    Ok(Json(RuleList {
        rules: rules
            .iter()
            .map(|r| {
                RuleView::from(r).with_report(reports.iter().find(|p| p.rule == r.id.as_str()))
            })
            .collect(),
    }))
}

/// `GET /api/v1/rules/<id>`, `ok` or `failing` (with why).
pub async fn get(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    actor.fleet_wide()?;
    let rule = stored(&s, &rule_id(&id)?).await?;
    let reports = s.control.rule_reports(Some(rule.id.clone())).await?;
    Ok(Json(RuleView::from(&rule).with_report(reports.first())))
}

/// `GET /api/v1/rules/<id>/traces`: the rule's latest evaluations that opened or resolved its
/// alert or decided nothing, newest first, over all its devices (kept across restarts).
pub async fn traces(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    actor.fleet_wide()?;
    let rule = stored(&s, &rule_id(&id)?).await?;
    let reports = s.control.rule_reports(Some(rule.id.clone())).await?;
    let traces = reports
        .into_iter()
        .next()
        .map(|r| r.traces)
        .unwrap_or_default();
    Ok(Json(json!({"rule": rule.id.as_str(), "traces": traces})))
}

/// The rules' failures for `/metrics`: one series per enabled rule (bounded by the rules).
pub(crate) async fn metrics(s: &AppState) -> String {
    let Ok(reports) = s.control.rule_reports(None).await else {
        return String::new();
    };
    let mut out = String::from(
        "# HELP sentio_rule_failures_total Evaluations of a rule that failed (type errors and the like) since it was created or last changed, across restarts.\n# TYPE sentio_rule_failures_total counter\n",
    );
    for r in &reports {
        out.push_str(&format!(
            "sentio_rule_failures_total{{rule=\"{}\"}} {}\n",
            r.rule, r.failures
        ));
    }
    let failing = reports.iter().filter(|r| r.failing.is_some()).count();
    out.push_str(&format!(
        "# HELP sentio_rules_failing Enabled rules whose latest evaluation on some device failed.\n# TYPE sentio_rules_failing gauge\nsentio_rules_failing {failing}\n"
    ));
    out
}

/// `PUT /api/v1/rules/<id>`: replaces the rule (its state starts afresh, its open alerts
/// resolve); 404 if there is none.
pub async fn update(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RuleBody>, JsonRejection>,
) -> Result<Json<RuleView>, ApiError> {
    actor.fleet_wide()?;
    let Json(body) = body?;
    let current = stored(&s, &rule_id(&id)?).await?;
    if body.id.as_deref().is_some_and(|b| b != id) {
        return Err(ApiError::bad_request(
            "the body's id differs from the path's",
        ));
    }
    save(
        &s,
        &actor,
        body.into_rule(current.id.as_str())?,
        "rule.update",
    )
    .await
}

/// `POST /api/v1/rules/<id>/enable`.
pub async fn enable(
    operator: Operator,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    set_enabled(operator, state, id, true).await
}

/// `POST /api/v1/rules/<id>/disable`: the rule stops being judged and its open alerts resolve.
pub async fn disable(
    operator: Operator,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    set_enabled(operator, state, id, false).await
}

async fn set_enabled(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    enabled: bool,
) -> Result<Json<RuleView>, ApiError> {
    actor.fleet_wide()?;
    let mut rule = stored(&s, &rule_id(&id)?).await?;
    rule.enabled = enabled;
    save(
        &s,
        &actor,
        rule,
        if enabled {
            "rule.enable"
        } else {
            "rule.disable"
        },
    )
    .await
}

/// `DELETE /api/v1/rules/<id>`: the rule's open alerts resolve.
pub async fn delete(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    actor.fleet_wide()?;
    let id = rule_id(&id)?;
    let rule = stored(&s, &id).await?;
    s.rules.delete_rule(&id).await?;
    s.control.reload_rules().await?;
    s.notifier.reload();
    tracing::info!(rule = %id, "rule deleted");
    s.audit_by(
        &actor,
        "rule.delete",
        Some(id.as_str()),
        json!({"name": rule.name}),
    )
    .await;
    Ok(Json(RuleView::from(&rule)))
}

/// `POST /api/v1/rules/<id>/test?from=&to=` (default: the last 24 hours): replays the stored
/// history of every device the rule selects through the rule's state machine and answers
/// when its alert would have opened and resolved and what its actions would have done (never
/// done). 422 beyond the replay limits (`[rules]`), naming them.
pub async fn test(
    Operator(actor): Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    actor.fleet_wide()?;
    let Query(p) = params?;
    let (from, to) = p.range(24 * 3_600_000)?;
    let rule = compile(stored(&s, &rule_id(&id)?).await?)?;
    let mut devices = Vec::new();
    for d in s.registry.list_devices().await? {
        let Ok(device) = sentio_core::DeviceId::parse(&d.id) else {
            continue;
        };
        if rule.rule.selector.selects(&device, &d.kind, &d.labels) {
            devices.push((device, d));
        }
    }
    replay::check_bounds(&s.rule_replay, from, to, devices.len())?;
    let mut selected = Vec::with_capacity(devices.len());
    for (device, d) in devices {
        let twin = s.twins.get(&device).await?;
        selected.push(ReplayDevice {
            id: device,
            kind: d.kind,
            labels: d.labels,
            twin,
        });
    }
    let started = std::time::Instant::now();
    let replays = replay::replay(
        &rule,
        s.series.as_ref(),
        &selected,
        (from, to),
        s.rule_clock,
    )
    .await?;
    let fired: usize = replays.iter().map(|r| r.episodes.len()).sum();
    Ok(Json(json!({
        "rule": rule.rule.id.as_str(),
        "from_ms": from,
        "to_ms": to,
        "fired": fired,
        "took_ms": started.elapsed().as_millis() as u64,
        "devices": replays,
    })))
}
