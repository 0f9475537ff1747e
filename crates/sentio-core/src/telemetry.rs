//! The telemetry payload: a JSON object `{"temperature": 21.5, "door_open": false, "ts": ...}`
//! or an array of such objects (a batch). Numbers and booleans become points, strings (up to
//! `MAX_TEXT_LEN` bytes) text events; `ts` is optional (milliseconds since the epoch, or
//! RFC 3339) and defaults to the receive time.
//!
//! Parsing never fails as a whole: it returns the points it could accept and a reason for
//! everything it refused, so a device with one bad field still gets its good fields stored and
//! the bad one explained.

use std::sync::Arc;

use serde_json::Value;

use crate::{DeviceId, Point, TextEvent, time};

/// Name of the optional timestamp field.
pub const TS_FIELD: &str = "ts";
/// Most objects accepted in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Longest metric name.
pub const MAX_METRIC_LEN: usize = 64;
/// Longest text value kept as an event (bytes).
pub const MAX_TEXT_LEN: usize = 1024;

/// What a payload yielded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    /// Points accepted.
    pub points: Vec<Point>,
    /// Text values accepted, as events.
    pub events: Vec<TextEvent>,
    /// A human-readable reason for each part that was refused.
    pub rejected: Vec<String>,
}

/// Whether `name` may be a metric name: 1-64 characters from `[A-Za-z0-9_.-]`.
pub fn valid_metric(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METRIC_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Which timestamps a payload may carry, relative to its receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Points stamped more than this after the receive time are refused (ms).
    pub max_future_ms: i64,
    /// Points stamped more than this before the receive time are refused (ms); `None`: any
    /// time since 1970 is accepted (replays of old history).
    pub max_late_ms: Option<i64>,
}

/// Parses a telemetry payload from `device` received at `now_ms`. Points stamped more than
/// `max_future_ms` after `now_ms` are refused; there is no lower bound but 1970.
pub fn parse(device: &DeviceId, payload: &[u8], now_ms: i64, max_future_ms: i64) -> Parsed {
    parse_in(
        device,
        payload,
        now_ms,
        TimeWindow {
            max_future_ms,
            max_late_ms: None,
        },
    )
}

/// Parses a telemetry payload from `device` received at `now_ms`, refusing points stamped
/// outside `window` around `now_ms`, with the reason.
pub fn parse_in(device: &DeviceId, payload: &[u8], now_ms: i64, window: TimeWindow) -> Parsed {
    let mut out = Parsed::default();
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            out.rejected.push(format!("malformed JSON: {e}"));
            return out;
        }
    };
    match value {
        Value::Object(obj) => parse_object(device, &obj, now_ms, window, &mut out),
        Value::Array(items) => {
            if items.len() > MAX_BATCH {
                out.rejected.push(format!(
                    "batch of {} objects is larger than the limit of {MAX_BATCH}",
                    items.len()
                ));
                return out;
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(obj) => parse_object(device, obj, now_ms, window, &mut out),
                    other => out.rejected.push(format!(
                        "batch item {i}: expected a JSON object, got {}",
                        kind(other)
                    )),
                }
            }
        }
        other => out.rejected.push(format!(
            "expected a JSON object or an array of objects, got {}",
            kind(&other)
        )),
    }
    out
}

fn parse_object(
    device: &DeviceId,
    obj: &serde_json::Map<String, Value>,
    now_ms: i64,
    window: TimeWindow,
    out: &mut Parsed,
) {
    let max_future_ms = window.max_future_ms;
    let ts_ms = match obj.get(TS_FIELD) {
        None => now_ms,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => ms,
            None => {
                out.rejected
                    .push(format!("\"ts\" {n} is not a whole number of milliseconds"));
                return;
            }
        },
        Some(Value::String(s)) => match time::parse_time(s) {
            Ok(ms) => ms,
            Err(e) => {
                out.rejected.push(format!("\"ts\": {e}"));
                return;
            }
        },
        Some(other) => {
            out.rejected.push(format!(
                "\"ts\" must be milliseconds or an RFC 3339 string, got {}",
                kind(other)
            ));
            return;
        }
    };
    if ts_ms > now_ms.saturating_add(max_future_ms) {
        out.rejected.push(format!(
            "timestamp {} is {} s in the future (limit {} s)",
            time::format_time(ts_ms),
            (ts_ms - now_ms) / 1000,
            max_future_ms / 1000
        ));
        return;
    }
    if ts_ms < 0 {
        out.rejected
            .push(format!("timestamp {ts_ms} is before 1970"));
        return;
    }
    if let Some(max_late_ms) = window.max_late_ms
        && ts_ms < now_ms.saturating_sub(max_late_ms)
    {
        out.rejected.push(format!(
            "timestamp {} is {} s in the past, older than the late-point window ({} s)",
            time::format_time(ts_ms),
            (now_ms - ts_ms) / 1000,
            max_late_ms / 1000
        ));
        return;
    }
    for (name, v) in obj {
        if name == TS_FIELD {
            continue;
        }
        if !valid_metric(name) {
            out.rejected.push(format!(
                "metric name {:?} is invalid: use 1-{MAX_METRIC_LEN} characters from A-Z a-z 0-9 _ . -",
                name.chars().take(80).collect::<String>()
            ));
            continue;
        }
        let value = match v {
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::String(text) if text.len() <= MAX_TEXT_LEN => {
                out.events.push(TextEvent {
                    device: device.clone(),
                    metric: Arc::from(name.as_str()),
                    ts_ms,
                    text: text.clone(),
                });
                continue;
            }
            Value::String(text) => {
                out.rejected.push(format!(
                    "metric {name:?}: text of {} bytes is longer than the limit of {MAX_TEXT_LEN}",
                    text.len()
                ));
                continue;
            }
            _ => None,
        };
        match value {
            Some(value) => out.points.push(Point {
                device: device.clone(),
                metric: crate::metric_names::shared(name),
                ts_ms,
                value,
            }),
            None => out.rejected.push(format!(
                "metric {name:?}: {} values are not stored (send numbers, booleans or text)",
                kind(v)
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn check(payload: &str, points: &[(&str, i64, f64)], rejected: &[&str]) {
        let dev = DeviceId::parse("d1").unwrap();
        let got = parse(&dev, payload.as_bytes(), NOW, 60_000);
        let got_points: Vec<(&str, i64, f64)> = got
            .points
            .iter()
            .map(|p| (&*p.metric, p.ts_ms, p.value))
            .collect();
        assert_eq!(got_points, points, "points of {payload}");
        assert_eq!(got.rejected.len(), rejected.len(), "{:?}", got.rejected);
        for (r, want) in got.rejected.iter().zip(rejected) {
            assert!(r.contains(want), "{r:?} should contain {want:?}");
        }
    }

    #[test]
    fn text_values_become_events() {
        let dev = DeviceId::parse("d1").unwrap();
        let got = parse(
            &dev,
            br#"{"ts": 7, "state": "running", "rpm": 1200}"#,
            NOW,
            60_000,
        );
        assert_eq!(got.points.len(), 1);
        assert!(got.rejected.is_empty());
        assert_eq!(got.events.len(), 1);
        let e = &got.events[0];
        assert_eq!(
            (&*e.metric, e.ts_ms, e.text.as_str()),
            ("state", 7, "running")
        );
    }

    #[test]
    fn payloads() {
        check(
            r#"{"temperature": 21.5, "door_open": false}"#,
            &[("door_open", NOW, 0.0), ("temperature", NOW, 21.5)],
            &[],
        );
        check(r#"{"ts": 5, "x": 1}"#, &[("x", 5, 1.0)], &[]);
        check(
            r#"{"ts": "2023-11-14T22:13:20Z", "x": true}"#,
            &[("x", NOW, 1.0)],
            &[],
        );
        check(
            r#"[{"ts": 1, "x": 1}, {"ts": 2, "x": 2}, 3]"#,
            &[("x", 1, 1.0), ("x", 2, 2.0)],
            &["batch item 2"],
        );
        check(r#"{"x": "hot", "y": 2}"#, &[("y", NOW, 2.0)], &[]);
        let long = format!(r#"{{"x": "{}", "y": 2}}"#, "a".repeat(MAX_TEXT_LEN + 1));
        check(&long, &[("y", NOW, 2.0)], &["longer than the limit"]);
        check(r#"{"x": null, "y": [1]}"#, &[], &["null", "array"]);
        check("{not json", &[], &["malformed JSON"]);
        check("42", &[], &["got number"]);
        check(r#"{"ts": 99999999999999, "x": 1}"#, &[], &["in the future"]);
        check(r#"{"ts": "soon", "x": 1}"#, &[], &["\"ts\""]);
        check(r#"{"ts": 1.5, "x": 1}"#, &[], &["whole number"]);
        check(r#"{"a/b": 1}"#, &[], &["invalid"]);
    }

    #[test]
    fn the_late_window_refuses_older_points_with_a_reason() {
        let dev = DeviceId::parse("d1").unwrap();
        let window = TimeWindow {
            max_future_ms: 60_000,
            max_late_ms: Some(3_600_000),
        };
        let payload = format!(
            r#"[{{"ts": {}, "x": 1}}, {{"ts": {}, "x": 2}}, {{"ts": {}, "s": "old"}}]"#,
            NOW - 3_600_000,
            NOW - 3_600_001,
            NOW - 7_200_000
        );
        let got = parse_in(&dev, payload.as_bytes(), NOW, window);
        let ts: Vec<i64> = got.points.iter().map(|p| p.ts_ms).collect();
        assert_eq!(ts, [NOW - 3_600_000], "the window's edge is inside it");
        assert!(got.events.is_empty(), "text events obey the same window");
        assert_eq!(got.rejected.len(), 2, "{:?}", got.rejected);
        assert!(got.rejected[0].contains("older than the late-point window (3600 s)"));
    }
}
