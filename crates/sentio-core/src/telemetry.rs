//! The telemetry payload: a JSON object `{"temperature": 21.5, "door_open": false, "ts": ...}`
//! or an array of such objects (a batch). Numbers and booleans become points, strings (up to
//! `MAX_TEXT_LEN` bytes) text events; `ts` is optional (milliseconds since the epoch, or
//! RFC 3339) and defaults to the receive time.
//!
//! Parsing never fails as a whole: it returns the points it could accept and a reason for
//! everything it refused, so a device with one bad field still gets its good fields stored and
//! the bad one explained.

use std::sync::Arc;

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
///
/// The JSON is read straight into the fields `parse_object` looks at (no `serde_json::Value`
/// tree: names and text are borrowed from the payload where they need no unescaping, a nested
/// array or object is skipped, not built); each object's fields are then taken in name order,
/// the last of a repeated name winning, as a JSON object reads.
pub fn parse_in(device: &DeviceId, payload: &[u8], now_ms: i64, window: TimeWindow) -> Parsed {
    let mut out = Parsed::default();
    let payload: shape::Payload<'_> = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            out.rejected.push(format!("malformed JSON: {e}"));
            return out;
        }
    };
    let mut names = Names::default();
    match payload {
        shape::Payload::Object(obj) => {
            parse_object(device, obj, now_ms, window, &mut names, &mut out)
        }
        shape::Payload::Array { items, len } => {
            if len > MAX_BATCH {
                out.rejected.push(format!(
                    "batch of {len} objects is larger than the limit of {MAX_BATCH}"
                ));
                return out;
            }
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    shape::Item::Object(obj) => {
                        parse_object(device, obj, now_ms, window, &mut names, &mut out)
                    }
                    shape::Item::Other(other) => out.rejected.push(format!(
                        "batch item {i}: expected a JSON object, got {other}"
                    )),
                }
            }
        }
        shape::Payload::Other(other) => out.rejected.push(format!(
            "expected a JSON object or an array of objects, got {other}"
        )),
    }
    out
}

/// The metric names met in one payload, so a batch of readings asks the shared table
/// ([`crate::metric_names::shared`], behind one lock for every connection) once per name, not
/// once per point.
#[derive(Default)]
struct Names(Vec<Arc<str>>);

impl Names {
    /// Most names remembered per payload (a linear search stays cheap below it).
    const MAX: usize = 64;

    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.iter().find(|n| &***n == name) {
            return known.clone();
        }
        let shared = crate::metric_names::shared(name);
        if self.0.len() < Self::MAX {
            self.0.push(shared.clone());
        }
        shared
    }
}

fn parse_object(
    device: &DeviceId,
    mut obj: shape::Object<'_>,
    now_ms: i64,
    window: TimeWindow,
    names: &mut Names,
    out: &mut Parsed,
) {
    // As a JSON object reads: fields in name order, the last of a repeated name kept (the
    // sort is stable, so repeats stay in payload order).
    obj.sort_by(|a, b| a.0.cmp(&b.0));
    let mut fields: shape::Object<'_> = Vec::with_capacity(obj.len());
    for field in obj {
        match fields.last_mut() {
            Some(last) if last.0 == field.0 => *last = field,
            _ => fields.push(field),
        }
    }
    let max_future_ms = window.max_future_ms;
    let ts_ms = match fields.iter().find(|f| f.0 == TS_FIELD).map(|f| &f.1) {
        None => now_ms,
        Some(shape::Field::Number(n)) => match n.as_i64() {
            Some(ms) => ms,
            None => {
                out.rejected
                    .push(format!("\"ts\" {n} is not a whole number of milliseconds"));
                return;
            }
        },
        Some(shape::Field::Text(s)) => match time::parse_time(s) {
            Ok(ms) => ms,
            Err(e) => {
                out.rejected.push(format!("\"ts\": {e}"));
                return;
            }
        },
        Some(other) => {
            out.rejected.push(format!(
                "\"ts\" must be milliseconds or an RFC 3339 string, got {}",
                other.kind()
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
    for (name, v) in fields {
        if name == TS_FIELD {
            continue;
        }
        if !valid_metric(&name) {
            out.rejected.push(format!(
                "metric name {:?} is invalid: use 1-{MAX_METRIC_LEN} characters from A-Z a-z 0-9 _ . -",
                name.chars().take(80).collect::<String>()
            ));
            continue;
        }
        let value = match v {
            shape::Field::Number(ref n) => n.as_f64().filter(|f| f.is_finite()),
            shape::Field::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            shape::Field::Text(text) if text.len() <= MAX_TEXT_LEN => {
                out.events.push(TextEvent {
                    device: device.clone(),
                    metric: Arc::from(&*name),
                    ts_ms,
                    text: text.into_owned(),
                });
                continue;
            }
            shape::Field::Text(text) => {
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
                metric: names.get(&name),
                ts_ms,
                value,
            }),
            None => out.rejected.push(format!(
                "metric {name:?}: {} values are not stored (send numbers, booleans or text)",
                v.kind()
            )),
        }
    }
}

/// A payload's JSON read into what the parser looks at, by serde visitors.
mod shape {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Number;

    /// An object's fields as they came (names borrowed when they need no unescaping).
    pub(super) type Object<'de> = Vec<(Cow<'de, str>, Field<'de>)>;

    /// A field's value: numbers as JSON read them, text kept, anything nested skipped.
    pub(super) enum Field<'de> {
        Null,
        Bool(bool),
        Number(Number),
        Text(Cow<'de, str>),
        Array,
        Object,
    }

    impl Field<'_> {
        /// The JSON kind, for a refusal's reason.
        pub(super) fn kind(&self) -> &'static str {
            match self {
                Self::Null => "null",
                Self::Bool(_) => "boolean",
                Self::Number(_) => "number",
                Self::Text(_) => "string",
                Self::Array => "array",
                Self::Object => "object",
            }
        }
    }

    /// A batch's item: an object, or the kind of anything else.
    pub(super) enum Item<'de> {
        Object(Object<'de>),
        Other(&'static str),
    }

    /// The whole payload. A batch longer than the limit keeps its length, not its items.
    pub(super) enum Payload<'de> {
        Object(Object<'de>),
        Array { items: Vec<Item<'de>>, len: usize },
        Other(&'static str),
    }

    /// A JSON string, borrowed from the input when it has no escapes.
    struct Str<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for Str<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Str<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(Str(Cow::Borrowed(v)))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Str(Cow::Owned(v.to_owned())))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                    Ok(Str(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// The visits of JSON's scalars (`null`, booleans, numbers) as a [`Field`], wrapped by
    /// `$wrap` into the visitor's output.
    macro_rules! scalar_visits {
        ($out:ty, $wrap:expr) => {
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<$out, E> {
                Ok($wrap(Field::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<$out, E> {
                Ok($wrap(Field::Number(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<$out, E> {
                Ok($wrap(Field::Number(v.into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<$out, E> {
                Ok($wrap(
                    Number::from_f64(v).map_or(Field::Null, Field::Number),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
                Ok($wrap(Field::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<$out, E> {
                Ok($wrap(Field::Null))
            }
        };
    }

    /// An object's fields, in payload order.
    fn fields<'de, A: MapAccess<'de>>(mut map: A) -> Result<Object<'de>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            let value: FieldIn<'de> = map.next_value()?;
            out.push((name, value.0));
        }
        Ok(out)
    }

    /// A field's value (nested arrays and objects skipped).
    struct FieldIn<'de>(Field<'de>);

    impl<'de> Deserialize<'de> for FieldIn<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = FieldIn<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                scalar_visits!(FieldIn<'de>, FieldIn);
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(FieldIn(Field::Text(Cow::Borrowed(v))))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(FieldIn(Field::Text(Cow::Owned(v.to_owned()))))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                    Ok(FieldIn(Field::Text(Cow::Owned(v))))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(FieldIn(Field::Array))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(FieldIn(Field::Object))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// The kind of a scalar, for a batch item or a payload that is not an object.
    fn kind_of(f: Field<'_>) -> &'static str {
        f.kind()
    }

    impl<'de> Deserialize<'de> for Item<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Item<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                scalar_visits!(Item<'de>, |f| Item::Other(kind_of(f)));
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                    Ok(Item::Other("string"))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Item::Other("array"))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    Ok(Item::Object(fields(map)?))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Payload<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Payload<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                scalar_visits!(Payload<'de>, |f| Payload::Other(kind_of(f)));
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                    Ok(Payload::Other("string"))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    // Past the limit only the length is kept: the batch is refused whole.
                    let mut items = Vec::new();
                    let mut len = 0usize;
                    loop {
                        let more = if len < super::MAX_BATCH {
                            seq.next_element::<Item<'de>>()?
                                .map(|item| items.push(item))
                        } else {
                            seq.next_element::<IgnoredAny>()?.map(|_| ())
                        };
                        if more.is_none() {
                            break;
                        }
                        len += 1;
                    }
                    Ok(Payload::Array { items, len })
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    Ok(Payload::Object(fields(map)?))
                }
            }
            d.deserialize_any(V)
        }
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
    fn an_object_reads_as_json_objects_do_repeats_last_names_in_order_ts_anywhere() {
        // A repeated name keeps its last value; fields come out in name order; `ts` may come
        // after the metrics; escaped names and text are read like any other.
        check(
            r#"{"b": 1, "a": 2, "b": 3, "ts": 9}"#,
            &[("a", 9, 2.0), ("b", 9, 3.0)],
            &[],
        );
        check(r#"{"ts": 1, "ts": 2, "x": 1}"#, &[("x", 2, 1.0)], &[]);
        check(r#"{"t\u0065mp": 20.5}"#, &[("temp", NOW, 20.5)], &[]);
        let dev = DeviceId::parse("d1").unwrap();
        let got = parse(
            &dev,
            br#"{"state": "r\u00e9gime \"on\"", "ts": 3}"#,
            NOW,
            60_000,
        );
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].text, "r\u{e9}gime \"on\"");
        assert_eq!(got.events[0].ts_ms, 3);
    }

    #[test]
    fn nested_values_big_numbers_and_non_objects_are_refused_with_their_kind() {
        check(
            r#"{"o": {"deep": [1, {"x": 2}]}, "y": 1.5e2, "z": -7}"#,
            &[("y", NOW, 150.0), ("z", NOW, -7.0)],
            &["object"],
        );
        check(r#"{"ts": {"ms": 1}, "x": 1}"#, &[], &["got object"]);
        check(
            r#"{"ts": 18446744073709551615, "x": 1}"#,
            &[],
            &["whole number"],
        );
        check(
            r#"{"big": 18446744073709551615}"#,
            &[("big", NOW, 1.8446744073709552e19)],
            &[],
        );
        check(
            r#"[{"x": 1}, "s", [2], null, true]"#,
            &[("x", NOW, 1.0)],
            &["got string", "got array", "got null", "got boolean"],
        );
        check(r#""text""#, &[], &["got string"]);
        check(r#"{"x": 1} trailing"#, &[], &["malformed JSON"]);
        check(r#"[{"x": 1},"#, &[], &["malformed JSON"]);
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_whole_with_its_length() {
        let n = MAX_BATCH + 5;
        let payload = format!("[{}]", vec![r#"{"x": 1}"#; n].join(","));
        check(&payload, &[], &[&format!("batch of {n} objects")]);
        let payload = format!("[{}]", vec![r#"{"x": 1}"#; MAX_BATCH].join(","));
        let dev = DeviceId::parse("d1").unwrap();
        assert_eq!(
            parse(&dev, payload.as_bytes(), NOW, 60_000).points.len(),
            MAX_BATCH
        );
    }

    #[test]
    fn a_payload_shares_one_name_per_metric() {
        let dev = DeviceId::parse("d1").unwrap();
        let got = parse(
            &dev,
            br#"[{"ts": 1, "m": 1}, {"ts": 2, "m": 2}]"#,
            NOW,
            60_000,
        );
        assert!(Arc::ptr_eq(&got.points[0].metric, &got.points[1].metric));
        assert!(Arc::ptr_eq(
            &got.points[0].metric,
            &crate::metric_names::shared("m")
        ));
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
