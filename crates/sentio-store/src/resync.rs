//! Re-sync between an edge and the cloud, by hourly digests: per series and closed hour, the
//! count and sum of its points, read from the hourly rollups on both sides ([`SeriesHours`]).
//!
//! The cloud sends its digests of the edge's series down ([`ResyncRequest`],
//! `edges/<id>/down/resync`); the edge compares them with its own ([`compare`]) and sends the
//! raw points of every hour that differs up again ([`ResyncPart`], `edges/<id>/up/resync`),
//! one part at a time, each acknowledged after the cloud committed its points and the run's
//! progress in one transaction ([`crate::EdgeStore::apply_resync`]). A point re-sent that the
//! cloud holds already changes nothing (same series and timestamp: same point), so rollups
//! recomputed from the raw points count it once.
//!
//! Only hours that both sides have rolled up to their end are compared (a partial hour's row
//! differs while the other side is still rolling it up); an hour the cloud holds and the edge
//! no longer does is not compared (the edge cannot send it).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::wire::WireError;
use crate::{BatchSeq, Incarnation};

/// An hour in ms.
pub const HOUR_MS: i64 = 3_600_000;

/// One hour of one series: the start of the hour (ms), its points' count and sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HourSum {
    /// Start of the hour (ms, a multiple of [`HOUR_MS`]).
    pub hour: i64,
    /// Points in the hour.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// The hourly digest of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesHours {
    /// The device.
    pub device: String,
    /// The metric.
    pub metric: String,
    /// Every minute before this is rolled up (none: nothing yet).
    pub rolled_until: Option<i64>,
    /// Its hours in `[from, to)`, in order.
    pub hours: Vec<HourSum>,
}

/// One hour of one series to send again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HourKey {
    /// The device.
    pub device: String,
    /// The metric.
    pub metric: String,
    /// Start of the hour (ms).
    pub hour: i64,
}

/// What [`compare`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compared {
    /// (series, hour) pairs compared.
    pub compared: u64,
    /// Those that differ (the cloud lacks the hour, or its count or sum differs), by series
    /// then hour.
    pub differing: Vec<HourKey>,
}

/// Whether two sums of the same points differ beyond rounding.
fn sums_differ(a: f64, b: f64) -> bool {
    (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Compares the edge's hourly digests with the cloud's: every hour the edge holds that both
/// sides have rolled up to its end, and whose count or sum the cloud does not hold the same.
pub fn compare(edge: &[SeriesHours], cloud: &[SeriesHours]) -> Compared {
    let cloud: HashMap<(&str, &str), &SeriesHours> = cloud
        .iter()
        .map(|s| ((s.device.as_str(), s.metric.as_str()), s))
        .collect();
    let mut out = Compared::default();
    for s in edge {
        let theirs = cloud.get(&(s.device.as_str(), s.metric.as_str()));
        // Closed on both sides: a series the cloud does not hold is compared as far as the
        // edge rolled it up; one it holds and has not rolled up yet, not at all.
        let limit = match (s.rolled_until, theirs.map(|c| c.rolled_until)) {
            (None, _) | (_, Some(None)) => continue,
            (Some(e), None) => e,
            (Some(e), Some(Some(c))) => e.min(c),
        };
        let held: HashMap<i64, &HourSum> = theirs
            .map(|c| c.hours.iter().map(|h| (h.hour, h)).collect())
            .unwrap_or_default();
        for h in s.hours.iter().filter(|h| h.hour + HOUR_MS <= limit) {
            out.compared += 1;
            let same = held
                .get(&h.hour)
                .is_some_and(|c| c.count == h.count && !sums_differ(c.sum, h.sum));
            if !same {
                out.differing.push(HourKey {
                    device: s.device.clone(),
                    metric: s.metric.clone(),
                    hour: h.hour,
                });
            }
        }
    }
    out
}

/// The cloud's request, sent down to the edge: compare `[from, to)` with these digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncRequest {
    /// The run's id (the cloud's).
    pub id: i64,
    /// Start of the range (ms).
    pub from: i64,
    /// End of the range (ms, exclusive).
    pub to: i64,
    /// Most (series, hour) pairs the edge sends again in this run (the first ones by series
    /// then hour; `differing` still counts them all).
    pub max_hours: u64,
    /// The cloud's digests of the edge's series in the range.
    pub cloud: Vec<SeriesHours>,
}

impl ResyncRequest {
    /// As sent (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request serialises")
    }

    /// Parses [`ResyncRequest::encode`].
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        serde_json::from_slice(payload).map_err(|e| WireError::new(format!("resync request: {e}")))
    }
}

/// What the edge found, carried by every part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncFigures {
    /// (series, hour) pairs compared.
    pub compared: u64,
    /// Those that differ (all re-sent, unless `to_send` is smaller).
    pub differing: u64,
}

/// The header of a part going up (`up/resync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PartHeader {
    id: i64,
    part: u32,
    last: bool,
    figures: ResyncFigures,
    /// Bytes of the minute rollups between the header and the points (none: no rollups).
    #[serde(default, skip_serializing_if = "is_zero")]
    rollup_bytes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One part of a re-sync run going up: what the edge's policy sends of hours that differ (raw
/// points; or their minute rollups, which replace the cloud's minutes of those hours, and the
/// raw points around alerts in them).
#[derive(Debug, Clone, PartialEq)]
pub struct ResyncPart {
    /// The run's id.
    pub id: i64,
    /// Its index in the run (from 0, consecutive).
    pub part: u32,
    /// Whether it is the run's last.
    pub last: bool,
    /// What the edge found.
    pub figures: ResyncFigures,
    /// The points (none in a last part of a run with nothing to send).
    pub points: Vec<sentio_core::Point>,
    /// Minute rollups (the aggregates policy): every minute the edge holds of each (series,
    /// hour) they touch, so the cloud's minutes of those hours are replaced by them.
    pub rollups: Vec<crate::SeriesRollups>,
}

impl ResyncPart {
    /// As sent: a 4-byte big-endian header length, the header (JSON), the rollups if any (a
    /// rollups message, [`crate::wire::encode_rollups`], of `rollup_bytes` in the header),
    /// then the points as an uplink message ([`crate::wire::encode`], the part under the run's
    /// id as its seq).
    pub fn encode(&self, incarnation: Incarnation) -> Vec<u8> {
        let rollups = if self.rollups.is_empty() {
            Vec::new()
        } else {
            crate::wire::encode_rollups(incarnation, &[(BatchSeq(self.id), &self.rollups)])
        };
        let header = serde_json::to_vec(&PartHeader {
            id: self.id,
            part: self.part,
            last: self.last,
            figures: self.figures,
            rollup_bytes: rollups.len() as u32,
        })
        .expect("a header serialises");
        let body = crate::wire::encode(
            incarnation,
            &[(BatchSeq(self.id), self.part, self.points.as_slice())],
        );
        let mut out = Vec::with_capacity(4 + header.len() + rollups.len() + body.len());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&rollups);
        out.extend_from_slice(&body);
        out
    }

    /// Parses [`ResyncPart::encode`], with bounds checks.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let bad = |m: &str| WireError::new(format!("resync part: {m}"));
        let len: [u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("too short"))?;
        let len = u32::from_be_bytes(len) as usize;
        let header = payload
            .get(4..4usize.saturating_add(len))
            .ok_or_else(|| bad("header cut"))?;
        let h: PartHeader = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
        let rest = &payload[4 + len..];
        let split = (h.rollup_bytes as usize).min(rest.len());
        let (rollups, body) = rest.split_at(split);
        if split != h.rollup_bytes as usize {
            return Err(bad("rollups cut"));
        }
        let rollups = if rollups.is_empty() {
            Vec::new()
        } else {
            crate::wire::decode_rollups(rollups)?
                .batches
                .into_iter()
                .flat_map(|b| b.1)
                .collect()
        };
        let body = crate::wire::decode(body)?;
        let points = body.batches.into_iter().flat_map(|b| b.points).collect();
        Ok(Self {
            id: h.id,
            part: h.part,
            last: h.last,
            figures: h.figures,
            points,
            rollups,
        })
    }
}

/// The state of a re-sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncState {
    /// Asked; parts arriving.
    Running,
    /// The edge's last part was applied.
    Done,
    /// Replaced by a later run before it finished, or refused.
    Failed,
}

impl ResyncState {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses [`ResyncState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Done, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A re-sync run of an edge, as the cloud records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResyncRun {
    /// Its id.
    pub id: i64,
    /// The edge.
    pub edge: sentio_core::EdgeId,
    /// Its state.
    pub state: ResyncState,
    /// The range compared (ms, `[from, to)`).
    pub from: i64,
    /// End of the range.
    pub to: i64,
    /// (series, hour) pairs compared, as the edge reported.
    pub hours_compared: u64,
    /// Those that differed.
    pub hours_differing: u64,
    /// Points re-sent and applied (each part once).
    pub points_resent: u64,
    /// Minute rollup rows re-sent and applied (the aggregates policy).
    pub rollup_rows_resent: u64,
    /// Parts applied.
    pub parts: u64,
    /// When it was asked (ms).
    pub started_ms: i64,
    /// When it ended (ms).
    pub finished_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(device: &str, rolled: Option<i64>, hours: &[(i64, u64, f64)]) -> SeriesHours {
        SeriesHours {
            device: device.into(),
            metric: "t".into(),
            rolled_until: rolled,
            hours: hours
                .iter()
                .map(|&(h, count, sum)| HourSum {
                    hour: h * HOUR_MS,
                    count,
                    sum,
                })
                .collect(),
        }
    }

    fn hours(c: &Compared) -> Vec<i64> {
        c.differing.iter().map(|k| k.hour / HOUR_MS).collect()
    }

    #[test]
    fn equal_hours_differ_in_nothing() {
        let s = series("d", Some(10 * HOUR_MS), &[(1, 3600, 7.5), (2, 3600, 8.25)]);
        let c = compare(std::slice::from_ref(&s), std::slice::from_ref(&s));
        assert_eq!(c.compared, 2);
        assert!(c.differing.is_empty());
    }

    #[test]
    fn a_missing_hour_a_count_and_a_sum_differ() {
        let edge = series(
            "d",
            Some(10 * HOUR_MS),
            &[(1, 3600, 1.0), (2, 3600, 2.0), (3, 3600, 3.0), (4, 10, 4.0)],
        );
        let cloud = series(
            "d",
            Some(10 * HOUR_MS),
            &[(1, 3600, 1.0), (3, 3599, 3.0), (4, 10, 4.5)],
        );
        let c = compare(&[edge], &[cloud]);
        assert_eq!(c.compared, 4);
        assert_eq!(hours(&c), vec![2, 3, 4]);
    }

    #[test]
    fn a_series_the_cloud_never_saw_differs_in_every_closed_hour() {
        let edge = series("d", Some(3 * HOUR_MS), &[(1, 5, 1.0), (2, 5, 1.0)]);
        let c = compare(&[edge], &[]);
        assert_eq!(hours(&c), vec![1, 2]);
    }

    #[test]
    fn hours_not_closed_on_both_sides_are_not_compared() {
        let edge = series(
            "d",
            Some(5 * HOUR_MS),
            &[(1, 5, 1.0), (2, 5, 1.0), (4, 2, 1.0)],
        );
        // The cloud rolled up to the middle of hour 2: its row of hour 2 is partial.
        let cloud = series("d", Some(2 * HOUR_MS + 1_000), &[(1, 5, 1.0), (2, 1, 0.2)]);
        let c = compare(&[edge], &[cloud]);
        assert_eq!(c.compared, 1);
        assert!(c.differing.is_empty());
        // A series the edge has not rolled up yet is not compared at all.
        let young = series("e", None, &[(1, 5, 1.0)]);
        assert_eq!(compare(&[young], &[]), Compared::default());
        // Nor one the cloud holds and has not rolled up yet.
        let edge = series("d", Some(5 * HOUR_MS), &[(1, 5, 1.0)]);
        let unrolled = series("d", None, &[]);
        assert_eq!(compare(&[edge], &[unrolled]), Compared::default());
    }

    #[test]
    fn hours_only_the_cloud_holds_are_not_compared() {
        let edge = series("d", Some(10 * HOUR_MS), &[(2, 1, 1.0)]);
        let cloud = series("d", Some(10 * HOUR_MS), &[(1, 1, 1.0), (2, 1, 1.0)]);
        let c = compare(&[edge], &[cloud]);
        assert_eq!((c.compared, c.differing.len()), (1, 0));
    }

    #[test]
    fn sums_equal_up_to_rounding_do_not_differ() {
        let edge = series("d", Some(10 * HOUR_MS), &[(1, 3, 0.1 + 0.2 + 0.3)]);
        let cloud = series("d", Some(10 * HOUR_MS), &[(1, 3, 0.3 + 0.2 + 0.1)]);
        assert!(compare(&[edge], &[cloud]).differing.is_empty());
    }

    #[test]
    fn a_part_goes_and_comes_back_whole_and_a_cut_one_is_refused() {
        let p = ResyncPart {
            id: 7,
            part: 3,
            last: true,
            figures: ResyncFigures {
                compared: 24,
                differing: 2,
            },
            points: vec![sentio_core::Point {
                device: sentio_core::DeviceId::parse("d").unwrap(),
                metric: "t".into(),
                ts_ms: 3_600_000,
                value: 21.5,
            }],
            rollups: Vec::new(),
        };
        let bytes = p.encode(Incarnation([1; 16]));
        assert_eq!(ResyncPart::decode(&bytes).unwrap(), p);
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(ResyncPart::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // With minute rollups (the aggregates policy) before the points.
        let row = |m: i64| crate::RollupRow {
            bucket_ms: HOUR_MS + m * 60_000,
            count: 60,
            sum: 1_290.5 + m as f64,
            min: 21.0,
            max: 22.5,
            first: (HOUR_MS + m * 60_000, 21.25),
            last: (HOUR_MS + m * 60_000 + 59_000, 22.0),
        };
        let p = ResyncPart {
            rollups: vec![crate::SeriesRollups {
                device: sentio_core::DeviceId::parse("d").unwrap(),
                metric: "t".into(),
                rows: (0..60).map(row).collect(),
            }],
            ..p
        };
        let bytes = p.encode(Incarnation([1; 16]));
        assert_eq!(ResyncPart::decode(&bytes).unwrap(), p);
        for cut in [0, 3, 10, 60, bytes.len() - 1] {
            assert!(ResyncPart::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let r = ResyncRequest {
            id: 1,
            from: 0,
            to: HOUR_MS,
            max_hours: 10,
            cloud: vec![series("d", Some(HOUR_MS), &[(0, 1, 0.1)])],
        };
        assert_eq!(ResyncRequest::decode(&r.encode()).unwrap(), r);
        assert!(ResyncRequest::decode(b"{").is_err());
    }
}
