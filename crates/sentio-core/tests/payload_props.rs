//! Property tests of the input paths Sentio owns: the telemetry payload parser, the time and
//! duration parsers. Whatever a device sends, parsing returns accepted points and reasons,
//! never panics, and never accepts a point it should refuse.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sentio_core::telemetry::{self, valid_metric};
use sentio_core::{DeviceId, time};

const NOW: i64 = 1_796_000_000_000;
const FUTURE: i64 = 60_000;

fn device() -> DeviceId {
    DeviceId::parse("dev-1").unwrap()
}

/// Checks what every parse result must satisfy, whatever the input.
fn check_invariants(p: &telemetry::Parsed) {
    for pt in &p.points {
        assert!(valid_metric(&pt.metric), "{pt:?}");
        assert!(pt.value.is_finite(), "{pt:?}");
        assert!(pt.ts_ms >= 0 && pt.ts_ms <= NOW + FUTURE, "{pt:?}");
        assert_eq!(pt.device.as_str(), "dev-1");
    }
    for e in &p.events {
        assert!(valid_metric(&e.metric), "{e:?}");
        assert!(e.text.len() <= telemetry::MAX_TEXT_LEN, "{e:?}");
        assert!(e.ts_ms >= 0 && e.ts_ms <= NOW + FUTURE, "{e:?}");
    }
}

/// JSON-ish text built from the tokens a payload is made of, so that the parser's deeper
/// branches are reached far more often than by random bytes.
fn jsonish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"ts\"".to_string()),
        Just("\"temp\"".to_string()),
        Just("\"bad name!\"".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("\"2026-11-24T10:00:00Z\"".to_string()),
        Just("\"9999-99-99\"".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        "\"[a-z_.-]{0,70}\"",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let p = telemetry::parse(&device(), &bytes, NOW, FUTURE);
        check_invariants(&p);
        // Nothing accepted means something was said about it (unless it was an empty batch).
        if p.points.is_empty() && p.events.is_empty() && bytes != b"[]" && bytes != b"{}" {
            let trimmed: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            if trimmed != b"[]" && trimmed != b"{}" {
                prop_assert!(!p.rejected.is_empty(), "silently dropped: {:?}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    #[test]
    fn jsonish_text_never_panics(text in jsonish()) {
        let p = telemetry::parse(&device(), text.as_bytes(), NOW, FUTURE);
        check_invariants(&p);
    }

    #[test]
    fn time_and_duration_parsers_never_panic(s in ".{0,64}") {
        let _ = time::parse_time(&s);
        let _ = time::parse_duration_ms(&s);
    }

    #[test]
    fn valid_objects_round_trip(
        fields in proptest::collection::btree_map("[a-z][a-z0-9_.-]{0,20}", prop_oneof![
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ], 1..12),
        ts in 0i64..NOW,
    ) {
        let fields: BTreeMap<String, serde_json::Value> =
            fields.into_iter().filter(|(k, _)| k != "ts").collect();
        prop_assume!(!fields.is_empty());
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), ts.into());
        for (k, v) in &fields {
            obj.insert(k.clone(), v.clone());
        }
        let payload = serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap();
        let p = telemetry::parse(&device(), &payload, NOW, FUTURE);
        prop_assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        prop_assert_eq!(p.points.len(), fields.len());
        for pt in &p.points {
            prop_assert_eq!(pt.ts_ms, ts);
            let want = match &fields[&*pt.metric] {
                serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
                v => v.as_f64().unwrap(),
            };
            prop_assert_eq!(pt.value, want);
        }
    }
}
