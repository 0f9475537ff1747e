//! `GET /api/v1/devices/<id>/export`: everything held about one device, streamed (the GDPR right
//! of access): its record, every point of every series, their rollups, and its alerts with their
//! explanations and feedback, and its text events. JSON lines by default
//! (`{"type": "device" | "point" | "rollup" | "event" | "alert", ...}`), or CSV of
//! the points (`?format=csv`: `metric,ts_ms,ts,value`).
//!
//! The answer is produced page by page while it is sent, so exporting years of data needs no
//! more memory than one page.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sentio_core::DeviceId;
use sentio_core::time::format_time;
use sentio_store::{AlertFilter, RangeQuery, Resolution};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::auth::Viewer;
use crate::dto::{AlertDto, ExportLine};
use crate::{ApiError, AppState};

/// Points read per store query.
const PAGE: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `jsonl` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    JsonLines,
    Csv,
}

pub async fn export(
    Viewer(actor): Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let format = match p.format.as_deref() {
        None | Some("jsonl") | Some("json") => Format::JsonLines,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not jsonl or csv"
            )));
        }
    };
    let device = DeviceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let record = s
        .registry
        .get_device(&device)
        .await?
        .filter(|d| actor.sees(&d.labels))
        .ok_or_else(|| ApiError::not_found(format!("device {id:?} not found")))?;
    let series = s.series.series(&device).await?;

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let send = |text: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        let fail = |what: String| {
            let tx = tx.clone();
            let device = record.id.clone();
            async move {
                // The status line is already sent: the client sees the body end with an error.
                tracing::error!(device = %device, "export cut short: {what}");
                let _ = tx.send(Err(std::io::Error::other(what))).await;
            }
        };
        let header = match format {
            Format::JsonLines => ExportLine::Device((&record).into()).to_line(),
            Format::Csv => "metric,ts_ms,ts,value\n".to_string(),
        };
        if !send(header).await {
            return;
        }
        for info in &series {
            let mut from = i64::MIN;
            loop {
                let q = RangeQuery {
                    device: device.clone(),
                    metric: info.metric.clone(),
                    from_ms: from,
                    to_ms: i64::MAX,
                    step: None,
                    limit: PAGE,
                };
                let page = match s.series.query(q).await {
                    Ok(p) => p,
                    Err(e) => return fail(format!("{}: {e}", info.metric)).await,
                };
                let mut text = String::with_capacity(page.points.len() * 48);
                for (ts, v) in &page.points {
                    match format {
                        Format::JsonLines => text.push_str(
                            &ExportLine::Point {
                                metric: &info.metric,
                                ts_ms: *ts,
                                value: *v,
                            }
                            .to_line(),
                        ),
                        Format::Csv => text.push_str(&format!(
                            "{},{ts},{},{v}\n",
                            info.metric,
                            format_time(*ts)
                        )),
                    }
                }
                if !send(text).await {
                    return;
                }
                match page.next {
                    Some(n) => from = n,
                    None => break,
                }
            }
        }
        if format == Format::JsonLines {
            // Rollups are data about the device too (all that is left once raw points expire).
            for info in &series {
                for res in [Resolution::Minute, Resolution::Hour] {
                    let mut from = i64::MIN;
                    loop {
                        let rows = match s
                            .series
                            .rollups(&device, &info.metric, res, from, PAGE)
                            .await
                        {
                            Ok(r) => r,
                            Err(e) => return fail(format!("{} rollups: {e}", info.metric)).await,
                        };
                        let mut text = String::new();
                        for r in &rows {
                            text.push_str(&ExportLine::rollup(&info.metric, res, r).to_line());
                        }
                        if !send(text).await {
                            return;
                        }
                        match rows.last() {
                            Some(r) if rows.len() == PAGE => from = r.bucket_ms + 1,
                            _ => break,
                        }
                    }
                }
            }
            match s
                .events
                .events(&device, None, sentio_store::EVENT_HISTORY * 1_000)
                .await
            {
                Ok(events) => {
                    let mut text = String::new();
                    for e in events.iter().rev() {
                        let line = ExportLine::Event {
                            metric: &e.metric,
                            ts_ms: e.ts_ms,
                            text: &e.text,
                        };
                        text.push_str(&line.to_line());
                    }
                    if !send(text).await {
                        return;
                    }
                }
                Err(e) => return fail(format!("events: {e}")).await,
            }
            let alerts = s
                .alerts
                .list_alerts(AlertFilter {
                    state: None,
                    device: Some(record.id.clone()),
                    acknowledged: None,
                    // i64::MAX: every alert (the store takes the limit as an SQL LIMIT).
                    limit: i64::MAX as usize,
                })
                .await;
            match alerts {
                Ok(alerts) => {
                    let mut text = String::new();
                    for a in alerts.iter().rev() {
                        text.push_str(&ExportLine::Alert(Box::new(AlertDto::from(a))).to_line());
                    }
                    send(text).await;
                }
                Err(e) => fail(format!("alerts: {e}")).await,
            }
        }
    });

    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let (content_type, ext) = match format {
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let disposition = format!("attachment; filename=\"{id}.{ext}\"");
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
