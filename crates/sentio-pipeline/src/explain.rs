//! Explanations of alerts, one function per kind: a series' own detectors, relations between a
//! device's metrics, peers, declared limits, forecasts and silence. Each says what was expected,
//! what was seen and which watch said so, in numbers and in one sentence.

use sentio_ai::limits::{Breach, Forecast};
use sentio_ai::{Contribution, PeerVerdict, RelationVerdict, Score, Silence};
use sentio_core::time::format_time;
use sentio_core::{AlertKind, Contributor, DeviceId, Explanation, Prediction};

/// A value as people read it: one decimal from 100 up, three below.
fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A series unlike its own history (the verdict of its detectors).
pub(crate) fn anomaly(metric: &str, s: &Score) -> Explanation {
    let direction = if s.observed > s.upper {
        "above"
    } else if s.observed < s.lower {
        "below"
    } else {
        "unusual within"
    };
    Explanation {
        kind: AlertKind::Anomaly,
        detector: s.detector.to_string(),
        expected: s.expected,
        lower: s.lower,
        upper: s.upper,
        observed: s.observed,
        score: s.score,
        message: format!(
            "{metric} = {} is {direction} the expected range {}..{} (expected about {}); detector: {}",
            round(s.observed),
            round(s.lower),
            round(s.upper),
            round(s.expected),
            s.detector
        ),
        contributors: Vec::new(),
        prediction: None,
    }
}

fn contributor(metric: &str, observed: f64, expected: f64) -> Contributor {
    Contributor {
        metric: metric.to_string(),
        observed,
        expected,
    }
}

/// A score in [0, 1) from a deviation in band half-widths: 0.63 at the band's edge.
fn score_of(ratio: f64) -> f64 {
    1.0 - (-ratio.abs()).exp()
}

/// Two metrics of a device that no longer move together.
pub(crate) fn relation(v: &RelationVerdict) -> Explanation {
    let (a, b) = (&v.metrics.0, &v.metrics.1);
    let half = (v.upper - v.lower) / 2.0;
    Explanation {
        kind: AlertKind::Relation,
        detector: "relation".into(),
        expected: v.expected.1,
        lower: v.lower,
        upper: v.upper,
        observed: v.observed.1,
        score: score_of((v.observed.1 - v.expected.1) / half.max(f64::MIN_POSITIVE)),
        message: format!(
            "{a} and {b} no longer move together (learnt correlation {:.2}): with {a} = {}, {b} \
             should be about {} ({}..{}) but is {}; with {b} = {}, {a} should be about {}; \
             detector: relation",
            v.correlation,
            round(v.observed.0),
            round(v.expected.1),
            round(v.lower),
            round(v.upper),
            round(v.observed.1),
            round(v.observed.1),
            round(v.expected.0),
        ),
        contributors: vec![
            contributor(a, v.observed.0, v.expected.0),
            contributor(b, v.observed.1, v.expected.1),
        ],
        prediction: None,
    }
}

/// A device that left its peers.
pub(crate) fn peer(
    device: &DeviceId,
    metric: &str,
    kind: &str,
    value: f64,
    v: &PeerVerdict,
) -> Explanation {
    let half = (v.upper - v.lower) / 2.0;
    Explanation {
        kind: AlertKind::Peer,
        detector: "peers".into(),
        expected: v.expected,
        lower: v.lower,
        upper: v.upper,
        observed: value,
        score: score_of((value - v.expected) / half.max(f64::MIN_POSITIVE)),
        message: format!(
            "{device} {metric} = {} departs from its {} peers of kind {kind} (median {}, and it is \
             usually {}{} from them): expected about {} ({}..{}); detector: peers",
            round(value),
            v.peers,
            round(v.peer_median),
            if v.usual_offset >= 0.0 { "+" } else { "" },
            round(v.usual_offset),
            round(v.expected),
            round(v.lower),
            round(v.upper),
        ),
        contributors: vec![
            contributor(metric, value, v.expected),
            contributor("peers_median", v.peer_median, v.peer_median),
        ],
        prediction: None,
    }
}

/// A value beyond a declared limit.
pub(crate) fn limit(metric: &str, value: f64, b: Breach) -> Explanation {
    let (lower, upper) = if b.upper {
        (f64::NEG_INFINITY, b.limit)
    } else {
        (b.limit, f64::INFINITY)
    };
    Explanation {
        kind: AlertKind::Limit,
        detector: "declared-limit".into(),
        expected: b.limit,
        lower: if lower.is_finite() { lower } else { b.limit },
        upper: if upper.is_finite() { upper } else { b.limit },
        observed: value,
        score: 1.0,
        message: format!(
            "{metric} = {} is {} its declared limit {}; detector: declared-limit",
            round(value),
            if b.upper { "above" } else { "below" },
            round(b.limit)
        ),
        contributors: Vec::new(),
        prediction: None,
    }
}

/// A forecast that reaches a declared limit.
pub(crate) fn predictive(metric: &str, f: &Forecast) -> Explanation {
    let lead_s = (f.expected_ms - f.made_ms) as f64 / 1000.0;
    let when = |t: Option<i64>| t.map_or_else(|| "beyond the horizon".to_string(), format_time);
    Explanation {
        kind: AlertKind::Predictive,
        detector: "forecast".into(),
        expected: f.limit,
        lower: f.current,
        upper: f.limit,
        observed: f.current,
        score: 0.5 + 0.5 * (-(lead_s / 3600.0)).exp(),
        message: format!(
            "{metric} (now {}) is forecast to reach its limit {} at {} (in {}; 95 % interval {} \
             to {}); detector: forecast (MSTL/AutoETS)",
            round(f.current),
            round(f.limit),
            format_time(f.expected_ms),
            human_duration(lead_s),
            when(f.earliest_ms),
            when(f.latest_ms),
        ),
        contributors: Vec::new(),
        prediction: Some(Prediction {
            limit: f.limit,
            expected_ms: Some(f.expected_ms),
            earliest_ms: f.earliest_ms,
            latest_ms: f.latest_ms,
            made_ms: f.made_ms,
        }),
    }
}

/// A device that stopped reporting.
pub(crate) fn silence(s: &Silence) -> Explanation {
    Explanation {
        kind: AlertKind::Silence,
        detector: "cadence".into(),
        expected: s.interval_ms / 1000.0,
        lower: 0.0,
        upper: s.threshold_ms / 1000.0,
        observed: s.silent_for_ms as f64 / 1000.0,
        score: score_of(s.silent_for_ms as f64 / s.threshold_ms),
        message: format!(
            "silent for {} although it usually reports every {} (alert after {}); last reading \
             at {}; detector: cadence",
            human_duration(s.silent_for_ms as f64 / 1000.0),
            human_duration(s.interval_ms / 1000.0),
            human_duration(s.threshold_ms / 1000.0),
            format_time(s.last_ts_ms),
        ),
        contributors: Vec::new(),
        prediction: None,
    }
}

fn human_duration(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else if seconds < 7_200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// A device that left every normal regime its device model learnt: the metrics that carry the
/// departure, each with its share and the value the others predict for it.
pub(crate) fn device(device: &DeviceId, ratio: f64, contributions: &[Contribution]) -> Explanation {
    // The main contributor: its expected value and ±3 of its spreads around what the other
    // metrics predict.
    let (observed, expected, spread) = contributions
        .iter()
        .find(|c| c.observed.is_finite() && c.expected.is_finite())
        .map_or((0.0, 0.0, 0.0), |c| {
            let spread = if c.sigma.abs() > f64::EPSILON {
                ((c.observed - c.expected) / c.sigma).abs()
            } else {
                0.0
            };
            (c.observed, c.expected, spread)
        });
    Explanation {
        kind: AlertKind::Device,
        detector: "device_model".into(),
        expected,
        lower: expected - 3.0 * spread,
        upper: expected + 3.0 * spread,
        observed,
        score: score_of(ratio),
        message: format!(
            "{device} {} (statistic {:.1}× its limit); detector: device_model",
            sentio_ai::device_model::describe(contributions, 4),
            ratio
        ),
        contributors: contributions
            .iter()
            .filter(|c| c.share >= 0.05 && c.observed.is_finite() && c.expected.is_finite())
            .take(8)
            .map(|c| contributor(&c.metric, c.observed, c.expected))
            .collect(),
        prediction: None,
    }
}

/// The device alert's last word when it stayed open long enough to become a new normal.
pub(crate) fn device_new_normal(device: &DeviceId, contributions: &[Contribution]) -> Explanation {
    let mut e = self::device(device, 1.0, contributions);
    e.message = format!(
        "{device} stayed away from its learnt regimes long enough: its current state is now learnt          as a new normal regime; {}",
        e.message
    );
    e
}
