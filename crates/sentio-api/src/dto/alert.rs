//! Alerts as the API shows them: the REST views, the stream's and the export's alert objects,
//! the feedback body and answer, and the declared limits.

use sentio_core::time::format_time;
use sentio_core::{Ack, Alert, Comment, Contributor, Explanation, Feedback, Prediction};
use sentio_pipeline::DeclaredLimit;
use serde::{Deserialize, Serialize};

/// Query string of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertParams {
    /// `open` (not resolved, acknowledged or not), `acknowledged`, `resolved` or `all` (the
    /// default).
    pub state: Option<String>,
    /// Only this device's alerts.
    pub device: Option<String>,
    /// Most alerts, newest first (default 500).
    pub limit: Option<usize>,
}

/// An alert with times in milliseconds only, as the stream and the export send it.
#[derive(Debug, Serialize)]
pub struct AlertDto {
    /// The store's id.
    pub id: i64,
    /// Device id.
    pub device: String,
    /// A metric, `a~b` for a pair of metrics, `*` for the whole device.
    pub metric: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// Time of the first anomalous point (ms).
    pub opened_ms: i64,
    /// Time of the latest anomalous point (ms).
    pub last_anomaly_ms: i64,
    /// When it resolved (ms); `null` while open.
    pub resolved_ms: Option<i64>,
    /// Anomalous points seen while open.
    pub anomalous_points: u64,
    /// The explanation at the moment it opened.
    pub explanation: ExplanationDto,
    /// The most extreme point while open.
    pub peak: ExplanationDto,
    /// What a user said about it; absent when nothing was said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackDto>,
    /// Who acknowledged it and when; absent until someone does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<AckDto>,
    /// Who resolved it by hand; absent when it resolved by itself or is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// The silence that kept it from being notified; absent when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<i64>,
}

/// Who acknowledged an alert.
#[derive(Debug, Serialize)]
pub struct AckDto {
    /// `user:<name>` or `admin`.
    pub by: String,
    /// When (ms).
    pub at_ms: i64,
}

impl From<&Ack> for AckDto {
    fn from(a: &Ack) -> Self {
        Self {
            by: a.by.clone(),
            at_ms: a.at_ms,
        }
    }
}

/// A comment on an alert.
#[derive(Debug, Serialize)]
pub struct CommentDto {
    /// `user:<name>` or `admin`.
    pub author: String,
    /// When (ms).
    pub at_ms: i64,
    /// The text.
    pub text: String,
}

impl From<&Comment> for CommentDto {
    fn from(c: &Comment) -> Self {
        Self {
            author: c.author.clone(),
            at_ms: c.at_ms,
            text: c.text.clone(),
        }
    }
}

/// `POST /api/v1/alerts/{id}/comments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The text (1 to 4,096 bytes).
    pub text: String,
}

/// `GET|POST /api/v1/alerts/{id}/comments` answer: every comment, oldest first.
#[derive(Debug, Serialize)]
pub struct CommentList {
    /// Oldest first.
    pub comments: Vec<CommentDto>,
}

impl From<&Alert> for AlertDto {
    fn from(a: &Alert) -> Self {
        Self {
            id: a.id.get(),
            device: a.device.clone(),
            metric: a.metric.clone(),
            state: a.lifecycle(),
            severity: a.severity().as_str(),
            opened_ms: a.opened_ms,
            last_anomaly_ms: a.last_anomaly_ms,
            resolved_ms: a.resolved_ms,
            anomalous_points: a.anomalous_points,
            explanation: (&a.explanation).into(),
            peak: (&a.peak).into(),
            feedback: a.feedback.as_ref().map(FeedbackDto::from),
            acknowledged: a.ack.as_ref().map(AckDto::from),
            resolved_by: a.resolved_by.clone(),
            silenced_by: a.silenced_by,
        }
    }
}

/// An alert as the REST API shows it: [`AlertDto`] with readable times beside the millisecond
/// ones.
#[derive(Debug, Serialize)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertDto,
    /// `opened_ms` as RFC 3339.
    pub opened: String,
    /// `resolved_ms` as RFC 3339; absent while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// The comments, oldest first: only in `GET /api/v1/alerts/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<CommentDto>>,
    /// In a cloud node: the edge that raised it (it went up with the edge's alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        Self {
            alert: a.into(),
            opened: format_time(a.opened_ms),
            resolved: a.resolved_ms.map(format_time),
            comments: None,
            edge: None,
        }
    }
}

/// `GET /api/v1/alerts` answer.
#[derive(Debug, Serialize)]
pub struct AlertList {
    /// Newest first.
    pub alerts: Vec<AlertView>,
}

/// Why an alert was raised.
#[derive(Debug, Serialize)]
pub struct ExplanationDto {
    /// `anomaly`, `relation`, `peer`, `silence`, `limit` or `predictive`.
    pub kind: &'static str,
    /// Detector(s) that fired.
    pub detector: String,
    /// The value expected at that time.
    pub expected: f64,
    /// Lower bound of the normal range.
    pub lower: f64,
    /// Upper bound of the normal range.
    pub upper: f64,
    /// The value observed.
    pub observed: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// One sentence for people.
    pub message: String,
    /// Relation and peer alerts: what contributed; absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contributors: Vec<ContributorDto>,
    /// Predictive alerts: when the limit is expected to be reached; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionDto>,
}

impl From<&Explanation> for ExplanationDto {
    fn from(e: &Explanation) -> Self {
        Self {
            kind: e.kind.as_str(),
            detector: e.detector.clone(),
            expected: e.expected,
            lower: e.lower,
            upper: e.upper,
            observed: e.observed,
            score: e.score,
            message: e.message.clone(),
            contributors: e.contributors.iter().map(ContributorDto::from).collect(),
            prediction: e.prediction.as_ref().map(PredictionDto::from),
        }
    }
}

/// One metric's (or the peers') part in a multivariate or fleet alert.
#[derive(Debug, Serialize)]
pub struct ContributorDto {
    /// The metric, or `peers`.
    pub metric: String,
    /// Its value at the time.
    pub observed: f64,
    /// What it was expected to be.
    pub expected: f64,
}

impl From<&Contributor> for ContributorDto {
    fn from(c: &Contributor) -> Self {
        Self {
            metric: c.metric.clone(),
            observed: c.observed,
            expected: c.expected,
        }
    }
}

/// When a forecast reaches a declared limit.
#[derive(Debug, Serialize)]
pub struct PredictionDto {
    /// The declared limit.
    pub limit: f64,
    /// When the point forecast reaches it (ms).
    pub expected_ms: Option<i64>,
    /// Earliest plausible crossing (ms).
    pub earliest_ms: Option<i64>,
    /// Latest plausible crossing within the horizon (ms).
    pub latest_ms: Option<i64>,
    /// When the forecast was made (ms).
    pub made_ms: i64,
}

impl From<&Prediction> for PredictionDto {
    fn from(p: &Prediction) -> Self {
        Self {
            limit: p.limit,
            expected_ms: p.expected_ms,
            earliest_ms: p.earliest_ms,
            latest_ms: p.latest_ms,
            made_ms: p.made_ms,
        }
    }
}

/// A user's verdict on an alert.
#[derive(Debug, Serialize)]
pub struct FeedbackDto {
    /// The alert was not a real problem.
    pub false_alarm: bool,
    /// Free text; absent when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was given (ms).
    pub at_ms: i64,
    /// What the engine changed in response.
    pub effect: String,
}

impl From<&Feedback> for FeedbackDto {
    fn from(f: &Feedback) -> Self {
        Self {
            false_alarm: f.false_alarm,
            note: f.note.clone(),
            at_ms: f.at_ms,
            effect: f.effect.clone(),
        }
    }
}

/// Body of `POST /api/v1/alerts/{id}/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// `true`: not a real problem (the detector becomes less sensitive); `false`: confirmed.
    /// Required unless `new_normal` is given.
    #[serde(default)]
    pub false_alarm: Option<bool>,
    /// `true`: the device's current state is normal; its device model learns it as a regime
    /// (device alerts only).
    #[serde(default)]
    pub new_normal: bool,
    /// Optional free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/feedback` answer.
#[derive(Debug, Serialize)]
pub struct FeedbackAnswer {
    /// The alert with its feedback.
    pub alert: AlertView,
    /// What the engine changed in response.
    pub effect: Option<String>,
}

impl From<&Alert> for FeedbackAnswer {
    fn from(a: &Alert) -> Self {
        Self {
            alert: a.into(),
            effect: a.feedback.as_ref().map(|f| f.effect.clone()),
        }
    }
}

/// A limit declared for one metric of every device of a kind.
#[derive(Debug, Serialize)]
pub struct LimitView {
    /// Device kind.
    pub kind: String,
    /// Metric.
    pub metric: String,
    /// Values below this are beyond the limit.
    pub lower: Option<f64>,
    /// Values above this are beyond the limit.
    pub upper: Option<f64>,
    /// How far ahead crossings are predicted (ms).
    pub horizon_ms: i64,
}

impl From<&DeclaredLimit> for LimitView {
    fn from(d: &DeclaredLimit) -> Self {
        Self {
            kind: d.kind.clone(),
            metric: d.metric.clone(),
            lower: d.limit.lower,
            upper: d.limit.upper,
            horizon_ms: d.limit.horizon_ms,
        }
    }
}

/// `GET /api/v1/limits` answer.
#[derive(Debug, Serialize)]
pub struct LimitList {
    /// Every declared limit.
    pub limits: Vec<LimitView>,
}

#[cfg(test)]
pub(crate) mod tests {
    use sentio_core::{AlertId, AlertKind, AlertState};

    use super::*;
    use crate::dto::tests::check;

    /// An open anomaly alert with neither contributors, prediction nor feedback.
    pub(crate) fn open_alert() -> Alert {
        let explanation = Explanation {
            kind: AlertKind::Anomaly,
            detector: "ensemble".into(),
            expected: 20.0,
            lower: 18.5,
            upper: 21.5,
            observed: 35.0,
            score: 0.97,
            message: "temperature 35 is far above the expected 20".into(),
            contributors: vec![],
            prediction: None,
        };
        Alert {
            id: AlertId::new(7),
            device: "pump-1".into(),
            metric: "temperature".into(),
            state: AlertState::Open,
            opened_ms: 1_700_000_000_000,
            last_anomaly_ms: 1_700_000_060_000,
            resolved_ms: None,
            anomalous_points: 3,
            peak: explanation.clone(),
            explanation,
            feedback: None,
            ack: None,
            resolved_by: None,
            silenced_by: None,
        }
    }

    /// A resolved predictive alert with contributors, a prediction and feedback.
    fn resolved_alert() -> Alert {
        let mut a = open_alert();
        a.state = AlertState::Resolved;
        a.resolved_ms = Some(1_700_000_120_000);
        a.peak = Explanation {
            kind: AlertKind::Predictive,
            detector: "forecast".into(),
            expected: 91.5,
            lower: 88.0,
            upper: 95.0,
            observed: 84.25,
            score: 0.8,
            message: "m".into(),
            contributors: vec![Contributor {
                metric: "rpm".into(),
                observed: 1500.0,
                expected: 1200.0,
            }],
            prediction: Some(Prediction {
                limit: 90.0,
                expected_ms: Some(1_700_000_600_000),
                earliest_ms: None,
                latest_ms: None,
                made_ms: 1_700_000_000_000,
            }),
        };
        a.feedback = Some(Feedback {
            false_alarm: true,
            note: None,
            at_ms: 1_700_000_130_000,
            effect: "less sensitive".into(),
        });
        a.ack = Some(Ack {
            by: "user:ann".into(),
            at_ms: 1_700_000_065_000,
        });
        a.resolved_by = Some("admin".into());
        a
    }

    const EXPLANATION: &str = r#"{"kind":"anomaly","detector":"ensemble","expected":20.0,"lower":18.5,"upper":21.5,"observed":35.0,"score":0.97,"message":"temperature 35 is far above the expected 20"}"#;
    const PEAK: &str = r#"{"kind":"predictive","detector":"forecast","expected":91.5,"lower":88.0,"upper":95.0,"observed":84.25,"score":0.8,"message":"m","contributors":[{"metric":"rpm","observed":1500.0,"expected":1200.0}],"prediction":{"limit":90.0,"expected_ms":1700000600000,"earliest_ms":null,"latest_ms":null,"made_ms":1700000000000}}"#;
    const FEEDBACK: &str =
        r#"{"false_alarm":true,"at_ms":1700000130000,"effect":"less sensitive"}"#;

    #[test]
    fn alerts() {
        let open = open_alert();
        let resolved = resolved_alert();
        let open_dto = format!(
            r#"{{"id":7,"device":"pump-1","metric":"temperature","state":"open","severity":"warning","opened_ms":1700000000000,"last_anomaly_ms":1700000060000,"resolved_ms":null,"anomalous_points":3,"explanation":{EXPLANATION},"peak":{EXPLANATION}}}"#
        );
        let resolved_dto = format!(
            r#"{{"id":7,"device":"pump-1","metric":"temperature","state":"resolved","severity":"warning","opened_ms":1700000000000,"last_anomaly_ms":1700000060000,"resolved_ms":1700000120000,"anomalous_points":3,"explanation":{EXPLANATION},"peak":{PEAK},"feedback":{FEEDBACK},"acknowledged":{{"by":"user:ann","at_ms":1700000065000}},"resolved_by":"admin"}}"#
        );
        let strip = |s: &str| s[..s.len() - 1].to_string();
        let opened = r#""opened":"2023-11-14T22:13:20Z""#;
        let resolved_at = r#""resolved":"2023-11-14T22:15:20Z""#;
        check(AlertDto::from(&open), &open_dto);
        check(AlertDto::from(&resolved), &resolved_dto);
        check(
            AlertView::from(&open),
            &format!("{},{opened}}}", strip(&open_dto)),
        );
        check(
            AlertView::from(&resolved),
            &format!("{},{opened},{resolved_at}}}", strip(&resolved_dto)),
        );
        check(
            FeedbackAnswer::from(&resolved),
            &format!(
                r#"{{"alert":{},{opened},{resolved_at}}},"effect":"less sensitive"}}"#,
                strip(&resolved_dto)
            ),
        );
        check(
            FeedbackAnswer::from(&open),
            &format!(
                r#"{{"alert":{},{opened}}},"effect":null}}"#,
                strip(&open_dto)
            ),
        );
        check(
            FeedbackDto::from(&Feedback {
                false_alarm: false,
                note: Some("checked".into()),
                at_ms: 1,
                effect: "e".into(),
            }),
            r#"{"false_alarm":false,"note":"checked","at_ms":1,"effect":"e"}"#,
        );
        let mut acked = open_alert();
        acked.ack = Some(Ack {
            by: "admin".into(),
            at_ms: 5,
        });
        assert_eq!(AlertDto::from(&acked).state, "acknowledged");
        check(
            CommentList {
                comments: vec![CommentDto::from(&Comment {
                    author: "user:ann".into(),
                    at_ms: 9,
                    text: "on it".into(),
                })],
            },
            r#"{"comments":[{"author":"user:ann","at_ms":9,"text":"on it"}]}"#,
        );
    }

    #[test]
    fn limits() {
        let limit = DeclaredLimit::parse("pump.bearing_temp<=90@2h").unwrap();
        check(
            LimitList {
                limits: vec![LimitView::from(&limit)],
            },
            r#"{"limits":[{"kind":"pump","metric":"bearing_temp","lower":null,"upper":90.0,"horizon_ms":7200000}]}"#,
        );
    }

    #[test]
    fn feedback_body() {
        let b: FeedbackBody = serde_json::from_str(r#"{"false_alarm":true,"note":"n"}"#).unwrap();
        assert_eq!(b.false_alarm, Some(true));
        assert!(!b.new_normal);
        assert_eq!(b.note.as_deref(), Some("n"));
        let b: FeedbackBody = serde_json::from_str(r#"{"new_normal":true}"#).unwrap();
        assert!(b.new_normal && b.false_alarm.is_none());
        assert!(serde_json::from_str::<FeedbackBody>(r#"{"false_alarm":true,"x":1}"#).is_err());
    }
}
