//! The uplink's message encoding: how an edge's batches cross the wire to the cloud (the
//! payload of `edges/<id>/up/points`). Compact and binary; decoding treats every byte as
//! hostile (bounds checked, counts capped by the bytes left, names validated), so a bad
//! payload is an error value, never a panic or an allocation larger than the payload allows.
//!
//! One message carries several batches (parts of batches, [`crate::edge::PART_POINTS`]) so
//! that a busy link is not mostly headers. An edge writes layout version 2 ([`columns`]:
//! columns per series, about a byte per small batch and one or two per point); the cloud
//! reads both versions, so an older edge keeps working.
//!
//! Layout version 1 ([`encode_v1`]): the version byte; the incarnation (16 bytes); the series
//! table (a varint count, then each series' device id and metric as a varint length and UTF-8
//! bytes); the batches (a varint count, then each one's seq, part and number of runs as
//! varints, and per run the series' index in the table and the number of points as varints,
//! the timestamps as zigzag varint deltas from the series' previous timestamp in the message,
//! and the values XORed with the series' previous value in the message, each written as one
//! byte holding the number of leading and trailing zero bytes of the XOR, then the bytes
//! between: a repeated value costs one byte, a slowly changing one three or four).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sentio_core::telemetry::valid_metric;
use sentio_core::{DeviceId, Point};

use crate::edge::{BatchSeq, Incarnation};

mod columns;
mod commands;
mod rollups;
mod twins;

pub use commands::{decode_commands, encode_commands};
pub use rollups::{RollupsMessage, VERSION as ROLLUPS_VERSION, encode as encode_rollups};
pub use twins::{
    DesiredRecord, ReportedRecord, decode_desired, decode_reported, encode_desired, encode_reported,
};

/// The first layout version, first byte of every payload but version 2 batch messages (the
/// status reports, registry and alert records keep it).
pub const VERSION: u8 = 1;

/// The batch layout an edge writes now ([`columns`]).
pub const BATCH_VERSION: u8 = columns::VERSION;

/// One batch (or part of one) in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct WireBatch {
    /// The batch's seq.
    pub seq: BatchSeq,
    /// Which part of the batch.
    pub part: u32,
    /// Its points, by series then time.
    pub points: Vec<Point>,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct WireMessage {
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// Its batches, in order.
    pub batches: Vec<WireBatch>,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("uplink message: {0}")]
pub struct WireError(String);

impl WireError {
    /// An error saying `what` (for the other messages of the link, e.g. `resync`).
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A value XORed with the previous one: the counts of leading and trailing zero bytes in one
/// byte, then the bytes between (none for a repeated value).
fn put_xor(out: &mut Vec<u8>, x: u64) {
    let bytes = x.to_be_bytes();
    let lead = (x.leading_zeros() / 8) as usize;
    if lead == 8 {
        out.push(0x80);
        return;
    }
    let trail = (x.trailing_zeros() / 8) as usize;
    out.push(((lead as u8) << 4) | trail as u8);
    out.extend_from_slice(&bytes[lead..8 - trail]);
}

/// What the encoder and decoder remember of a series within one message.
#[derive(Clone, Copy, Default)]
struct Last {
    ts: i64,
    bits: u64,
}

/// Points of one batch grouped by series index, then time (the last given wins).
type Runs = BTreeMap<usize, BTreeMap<i64, f64>>;

/// The start every layout shares: its version, the incarnation, the series table.
fn put_header(out: &mut Vec<u8>, version: u8, incarnation: Incarnation, table: &[(&str, &str)]) {
    out.push(version);
    out.extend_from_slice(&incarnation.0);
    put_varint(out, table.len() as u64);
    for (device, metric) in table {
        put_str(out, device);
        put_str(out, metric);
    }
}

/// The series of `batches` in order of first appearance, and each batch's points by series.
fn series_table<'a>(
    batches: &'a [(BatchSeq, u32, &[Point])],
) -> (Vec<(&'a str, &'a str)>, Vec<Runs>) {
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut table: Vec<(&str, &str)> = Vec::new();
    let mut runs: Vec<Runs> = Vec::with_capacity(batches.len());
    for (_, _, points) in batches {
        let mut by_series = Runs::new();
        for p in points.iter() {
            let key = (p.device.as_str(), &*p.metric);
            let i = *index.entry(key).or_insert_with(|| {
                table.push(key);
                table.len() - 1
            });
            by_series.entry(i).or_default().insert(p.ts_ms, p.value);
        }
        runs.push(by_series);
    }
    (table, runs)
}

/// Encodes batches into one message, in the current layout ([`BATCH_VERSION`]). Within a
/// batch, points of one series and timestamp appear once (the last given wins).
pub fn encode(incarnation: Incarnation, batches: &[(BatchSeq, u32, &[Point])]) -> Vec<u8> {
    columns::encode(incarnation, batches).unwrap_or_else(|| encode_v1(incarnation, batches))
}

/// Encodes batches in layout version 1, as edges before version 2 did (and as [`encode`]
/// does for batches out of seq order).
pub fn encode_v1(incarnation: Incarnation, batches: &[(BatchSeq, u32, &[Point])]) -> Vec<u8> {
    let (table, runs) = series_table(batches);
    let n: usize = batches.iter().map(|b| b.2.len()).sum();
    let mut out = Vec::with_capacity(32 + table.len() * 16 + n * 6);
    put_header(&mut out, VERSION, incarnation, &table);
    put_varint(&mut out, batches.len() as u64);
    let mut last = vec![Last::default(); table.len()];
    for ((seq, part, _), by_series) in batches.iter().zip(runs) {
        put_varint(&mut out, seq.0 as u64);
        put_varint(&mut out, u64::from(*part));
        put_varint(&mut out, by_series.len() as u64);
        for (i, run) in by_series {
            put_varint(&mut out, i as u64);
            put_varint(&mut out, run.len() as u64);
            let l = &mut last[i];
            for (&ts, &v) in &run {
                put_varint(&mut out, zigzag(ts.wrapping_sub(l.ts)));
                put_xor(&mut out, v.to_bits() ^ l.bits);
                (l.ts, l.bits) = (ts, v.to_bits());
            }
        }
    }
    out
}

/// A cursor over a payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn err<T>(what: &str) -> Result<T, WireError> {
        Err(WireError(what.to_string()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Self::err("truncated");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Self::err("varint too long")
    }

    /// A count of items each taking at least `min_bytes`: never more than the bytes left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > (self.bytes.len() / min_bytes.max(1)) as u64 {
            return Self::err("a count larger than the payload");
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.count(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError("a name is not UTF-8".into()))
    }

    /// A series table: each series' device id and metric, checked.
    fn series_table(&mut self) -> Result<Vec<(DeviceId, Arc<str>)>, WireError> {
        let n_series = self.count(4)?;
        let mut table = Vec::with_capacity(n_series);
        for _ in 0..n_series {
            let device =
                DeviceId::parse(self.str()?).map_err(|e| WireError(format!("device id: {e}")))?;
            let metric = self.str()?;
            if !valid_metric(metric) {
                return Self::err("invalid metric name");
            }
            table.push((device, Arc::<str>::from(metric)));
        }
        Ok(table)
    }

    fn xor(&mut self) -> Result<u64, WireError> {
        let head = self.byte()?;
        if head == 0x80 {
            return Ok(0);
        }
        let (lead, trail) = ((head >> 4) as usize, (head & 0x0f) as usize);
        if lead + trail >= 8 {
            return Self::err("a value header out of range");
        }
        let mut bytes = [0u8; 8];
        bytes[lead..8 - trail].copy_from_slice(self.take(8 - lead - trail)?);
        Ok(u64::from_be_bytes(bytes))
    }
}

/// Decodes a message of either layout version.
pub fn decode(payload: &[u8]) -> Result<WireMessage, WireError> {
    let mut r = Reader { bytes: payload };
    match r.byte()? {
        VERSION => decode_v1(r),
        columns::VERSION => columns::decode(r),
        _ => Reader::err("unknown version"),
    }
}

/// Decodes the rest of a version 1 message (after its version byte).
fn decode_v1(mut r: Reader<'_>) -> Result<WireMessage, WireError> {
    let incarnation = Incarnation(r.take(16)?.try_into().expect("16 bytes"));
    let table = r.series_table()?;
    let mut last = vec![Last::default(); table.len()];
    let n_batches = r.count(3)?;
    let mut batches = Vec::with_capacity(n_batches);
    for _ in 0..n_batches {
        let seq = i64::try_from(r.varint()?).map_err(|_| WireError("seq out of range".into()))?;
        let part = u32::try_from(r.varint()?).map_err(|_| WireError("part out of range".into()))?;
        let n_runs = r.count(2)?;
        let mut points = Vec::new();
        for _ in 0..n_runs {
            let i = r.varint()?;
            let Some((device, metric)) = usize::try_from(i).ok().and_then(|i| table.get(i)) else {
                return Reader::err("a series index out of the table");
            };
            let l = &mut last[i as usize];
            let count = r.count(2)?;
            for _ in 0..count {
                let ts = l.ts.wrapping_add(unzigzag(r.varint()?));
                let bits = l.bits ^ r.xor()?;
                (l.ts, l.bits) = (ts, bits);
                points.push(Point {
                    device: device.clone(),
                    metric: metric.clone(),
                    ts_ms: ts,
                    value: f64::from_bits(bits),
                });
            }
        }
        batches.push(WireBatch {
            seq: BatchSeq(seq),
            part,
            points,
        });
    }
    if !r.bytes.is_empty() {
        return Reader::err("bytes after the last batch");
    }
    Ok(WireMessage {
        incarnation,
        batches,
    })
}

/// Decodes a rollups message ([`encode_rollups`]).
pub fn decode_rollups(payload: &[u8]) -> Result<RollupsMessage, WireError> {
    let mut r = Reader { bytes: payload };
    match r.byte()? {
        rollups::VERSION => rollups::decode(r),
        _ => Reader::err("unknown version"),
    }
}

/// What an edge reports of its outbox (`edges/<id>/up/status`), so the cloud can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// Batches committed on the edge and not yet acknowledged.
    pub pending_batches: u64,
    /// Points in them.
    pub pending_points: u64,
    /// Age of the oldest of them when reported (ms), if any.
    pub oldest_pending_age_ms: Option<u64>,
    /// Every batch up to this one is acknowledged.
    pub acked: BatchSeq,
    /// Of the pending batches, those in the backlog lane.
    pub backlog_batches: u64,
    /// Points in them.
    pub backlog_points: u64,
    /// Backlog points acknowledged per second lately.
    pub backlog_drain_rate: u64,
    /// What the edge sends up (a report of an edge before policies: raw).
    pub policy: crate::UplinkPolicy,
    /// The edge's clock when it sent the report (ms since the epoch; none from an edge before
    /// clock checks), so the cloud can flag an edge whose clock is off.
    pub clock_ms: Option<i64>,
    /// Undelivered raw points the edge's disk budget replaced by their minute rollups, ever
    /// (0 from an edge before budget counts).
    pub degraded_points: u64,
    /// Undelivered raw points its disk budget removed, ever.
    pub dropped_points: u64,
}

impl StatusReport {
    /// How far the edge's clock is ahead of the receiver's (negative: behind), given when the
    /// report arrived by the receiver's clock (`received_ms`); the one-way delay of the report
    /// counts as "behind", so on a live link it stays well under a second.
    pub fn clock_skew_ms(&self, received_ms: i64) -> Option<i64> {
        self.clock_ms.map(|c| c.saturating_sub(received_ms))
    }
}

/// Encodes a status report: the version byte, then eleven varints (the age plus one, 0 for
/// none; the policy, 0 raw and 1 aggregates; the clock plus one; the degraded and dropped
/// points last); a report of an edge before lanes ends after the fourth, one before policies
/// after the seventh, one before clock checks after the eighth, one before budget counts after
/// the ninth.
pub fn encode_status(r: &StatusReport) -> Vec<u8> {
    let mut out = vec![VERSION];
    put_varint(&mut out, r.pending_batches);
    put_varint(&mut out, r.pending_points);
    put_varint(
        &mut out,
        r.oldest_pending_age_ms.map_or(0, |a| a.saturating_add(1)),
    );
    put_varint(&mut out, r.acked.0.max(0) as u64);
    put_varint(&mut out, r.backlog_batches);
    put_varint(&mut out, r.backlog_points);
    put_varint(&mut out, r.backlog_drain_rate);
    put_varint(
        &mut out,
        u64::from(r.policy == crate::UplinkPolicy::Aggregates),
    );
    put_varint(
        &mut out,
        r.clock_ms
            .map_or(0, |c| (c.max(0) as u64).saturating_add(1)),
    );
    put_varint(&mut out, r.degraded_points);
    put_varint(&mut out, r.dropped_points);
    out
}

/// Decodes [`encode_status`].
pub fn decode_status(payload: &[u8]) -> Result<StatusReport, WireError> {
    let mut r = Reader { bytes: payload };
    if r.byte()? != VERSION {
        return Reader::err("unknown version");
    }
    let mut report = StatusReport {
        pending_batches: r.varint()?,
        pending_points: r.varint()?,
        oldest_pending_age_ms: r.varint()?.checked_sub(1),
        acked: BatchSeq(i64::try_from(r.varint()?).map_err(|_| WireError("seq".into()))?),
        ..StatusReport::default()
    };
    if !r.bytes.is_empty() {
        report.backlog_batches = r.varint()?;
        report.backlog_points = r.varint()?;
        report.backlog_drain_rate = r.varint()?;
    }
    if !r.bytes.is_empty() {
        report.policy = match r.varint()? {
            0 => crate::UplinkPolicy::Raw,
            1 => crate::UplinkPolicy::Aggregates,
            _ => return Reader::err("unknown policy"),
        };
    }
    if !r.bytes.is_empty() {
        report.clock_ms = r
            .varint()?
            .checked_sub(1)
            .map(|c| i64::try_from(c).map_err(|_| WireError("clock".into())))
            .transpose()?;
    }
    if !r.bytes.is_empty() {
        report.degraded_points = r.varint()?;
        report.dropped_points = r.varint()?;
    }
    if !r.bytes.is_empty() {
        return Reader::err("bytes after the report");
    }
    Ok(report)
}

/// One device of an edge's registry as it goes up (`edges/<id>/up/registry`): its current
/// name, kind and labels. Applying one again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRecord {
    /// The device's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Encodes registry records: the version byte, then a JSON array.
pub fn encode_registry(records: &[RegistryRecord]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(serde_json::to_vec(records).expect("records serialise"));
    out
}

/// An edge's registry message: records, and (from edges that send it) the id of every device
/// the edge holds now, so the cloud deletes its devices of that edge that are not among them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryMessage {
    /// Devices created or changed.
    pub devices: Vec<RegistryRecord>,
    /// Every device of the edge now (none: not said, an edge before deletions went up).
    pub all: Option<Vec<String>>,
}

/// [`RegistryMessage`] as JSON (a message with `all`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySnapshot {
    devices: Vec<RegistryRecord>,
    all: Vec<String>,
}

/// Encodes registry records with the id of every device the edge holds: the version byte,
/// then a JSON object (`devices`, `all`).
pub fn encode_registry_snapshot(records: &[RegistryRecord], all: &[String]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(
        serde_json::to_vec(&RegistrySnapshot {
            devices: records.to_vec(),
            all: all.to_vec(),
        })
        .expect("records serialise"),
    );
    out
}

/// Decodes [`encode_registry_snapshot`] or [`encode_registry`], checking every id, name, kind
/// and label as the API does.
pub fn decode_registry_message(payload: &[u8]) -> Result<RegistryMessage, WireError> {
    let Some((&VERSION, json)) = payload.split_first() else {
        return Reader::err("unknown version");
    };
    if json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Ok(RegistryMessage {
            devices: decode_registry(payload)?,
            all: None,
        });
    }
    let s: RegistrySnapshot =
        serde_json::from_slice(json).map_err(|e| WireError(format!("registry: {e}")))?;
    check_registry(&s.devices)?;
    for id in &s.all {
        DeviceId::parse(id).map_err(|e| WireError(format!("device id: {e}")))?;
    }
    Ok(RegistryMessage {
        devices: s.devices,
        all: Some(s.all),
    })
}

/// Decodes [`encode_registry`], checking every id, name, kind and label as the API does.
pub fn decode_registry(payload: &[u8]) -> Result<Vec<RegistryRecord>, WireError> {
    let Some((&VERSION, json)) = payload.split_first() else {
        return Reader::err("unknown version");
    };
    let records: Vec<RegistryRecord> =
        serde_json::from_slice(json).map_err(|e| WireError(format!("registry: {e}")))?;
    check_registry(&records)?;
    Ok(records)
}

/// Checks every id, name, kind and label of `records` as the API does.
fn check_registry(records: &[RegistryRecord]) -> Result<(), WireError> {
    for r in records {
        DeviceId::parse(&r.id).map_err(|e| WireError(format!("device id: {e}")))?;
        crate::labels::validate(&r.labels)
            .and_then(|_| crate::labels::validate_kind(&r.kind))
            .and_then(|_| crate::labels::validate_name(&r.name))
            .map_err(|e| WireError(format!("device {}: {e}", r.id)))?;
    }
    Ok(())
}

/// One alert of an edge as it goes up (`edges/<id>/up/alerts`), as it is now; `id` is the
/// edge's own alert id. Applying one again changes nothing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRecord {
    id: i64,
    device: String,
    metric: String,
    state: String,
    opened_ms: i64,
    last_anomaly_ms: i64,
    resolved_ms: Option<i64>,
    anomalous_points: u64,
    explanation: String,
    peak: String,
    ack: Option<(String, i64)>,
    resolved_by: Option<String>,
}

/// Encodes alerts (with the edge's ids): the version byte, then a JSON array.
pub fn encode_alerts(alerts: &[sentio_core::Alert]) -> Vec<u8> {
    let records: Vec<AlertRecord> = alerts
        .iter()
        .map(|a| AlertRecord {
            id: a.id.get(),
            device: a.device.clone(),
            metric: a.metric.clone(),
            state: a.state.as_str().into(),
            opened_ms: a.opened_ms,
            last_anomaly_ms: a.last_anomaly_ms,
            resolved_ms: a.resolved_ms,
            anomalous_points: a.anomalous_points,
            explanation: crate::stored_form::explanation_json(&a.explanation),
            peak: crate::stored_form::explanation_json(&a.peak),
            ack: a.ack.as_ref().map(|k| (k.by.clone(), k.at_ms)),
            resolved_by: a.resolved_by.clone(),
        })
        .collect();
    let mut out = vec![VERSION];
    out.extend(serde_json::to_vec(&records).expect("records serialise"));
    out
}

/// Decodes [`encode_alerts`]: each alert with the edge's id (never [`sentio_core::AlertId::UNSAVED`]),
/// on a device.
pub fn decode_alerts(payload: &[u8]) -> Result<Vec<sentio_core::Alert>, WireError> {
    decode_alerts_on(payload, None)
}

/// Decodes [`encode_alerts`] from edge `edge`: on a device, or on the edge itself
/// (`edge:<edge>`, its disk budget's alert); an alert on another edge is refused.
pub fn decode_edge_alerts(
    payload: &[u8],
    edge: &sentio_core::EdgeId,
) -> Result<Vec<sentio_core::Alert>, WireError> {
    decode_alerts_on(payload, Some(&crate::edge_username(edge)))
}

fn decode_alerts_on(
    payload: &[u8],
    own: Option<&str>,
) -> Result<Vec<sentio_core::Alert>, WireError> {
    let Some((&VERSION, json)) = payload.split_first() else {
        return Reader::err("unknown version");
    };
    let records: Vec<AlertRecord> =
        serde_json::from_slice(json).map_err(|e| WireError(format!("alerts: {e}")))?;
    records
        .into_iter()
        .map(|r| {
            let bad = |what: &str| WireError(format!("alert {}: {what}", r.id));
            if r.id <= 0 {
                return Err(bad("id"));
            }
            if DeviceId::parse(&r.device).is_err() && own != Some(r.device.as_str()) {
                return Err(bad("device id"));
            }
            Ok(sentio_core::Alert {
                id: sentio_core::AlertId::new(r.id),
                state: sentio_core::AlertState::parse(&r.state).ok_or_else(|| bad("state"))?,
                explanation: crate::stored_form::read_explanation(&r.explanation)
                    .map_err(|_| bad("explanation"))?,
                peak: crate::stored_form::read_explanation(&r.peak).map_err(|_| bad("peak"))?,
                device: r.device,
                metric: r.metric,
                opened_ms: r.opened_ms,
                last_anomaly_ms: r.last_anomaly_ms,
                resolved_ms: r.resolved_ms,
                anomalous_points: r.anomalous_points,
                feedback: None,
                ack: r.ack.map(|(by, at_ms)| sentio_core::Ack { by, at_ms }),
                resolved_by: r.resolved_by,
                silenced_by: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each batch's seq, part, and points as (device, ts, value bits).
    type BatchBits = Vec<(i64, u32, Vec<(String, i64, u64)>)>;

    fn p(device: &str, metric: &str, ts_ms: i64, value: f64) -> Point {
        Point {
            device: DeviceId::parse(device).unwrap(),
            metric: Arc::from(metric),
            ts_ms,
            value,
        }
    }

    #[test]
    fn round_trips_batches_and_costs_few_bytes_per_point() {
        let inc = Incarnation([7; 16]);
        let first = vec![
            p("a", "x", -5, 1.5),
            p("a", "x", 3, f64::MIN_POSITIVE),
            p("b", "y", 0, -0.0),
        ];
        let second: Vec<Point> = (0..1000)
            .flat_map(|i| {
                let t = 1_700_000_000_000 + i * 1000;
                [
                    p("b", "y", t, 20.0 + (i % 7) as f64 / 4.0),
                    p("a", "x", t, 3.0),
                ]
            })
            .collect();
        let third = vec![
            p("a", "x", i64::MAX, f64::NAN),
            p("a", "x", i64::MIN, f64::INFINITY),
        ];
        let bytes = encode(
            inc,
            &[
                (BatchSeq(42), 0, &first),
                (BatchSeq(43), 2, &second),
                (BatchSeq(44), 0, &third),
            ],
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back.incarnation, inc);
        let sorted = |v: &[Point]| {
            let mut v = v.to_vec();
            v.sort_by(|x, y| {
                (x.device.as_str(), &*x.metric, x.ts_ms).cmp(&(
                    y.device.as_str(),
                    &*y.metric,
                    y.ts_ms,
                ))
            });
            v
        };
        assert_eq!(back.batches.len(), 3);
        assert_eq!(
            (back.batches[1].seq, back.batches[1].part),
            (BatchSeq(43), 2)
        );
        assert_eq!(back.batches[0].points, sorted(&first));
        assert_eq!(back.batches[1].points, sorted(&second));
        let nan = &back.batches[2].points;
        assert!(nan[1].value.is_nan() && nan[0].value == f64::INFINITY);
        // A regular series of repeated or slowly changing values: a few bytes per point.
        assert!(
            bytes.len() < 2_000 * 5,
            "{} bytes for 2,000 points",
            bytes.len()
        );
    }

    /// Batches as an edge commits them under a small fleet: one device's publish each (two
    /// metrics, one point each, the same timestamp), devices in turn every few ms.
    fn small_commits(n: i64) -> Vec<(BatchSeq, u32, Vec<Point>)> {
        (0..n)
            .map(|k| {
                let device = format!("dev-{}", k % 4);
                let ts = 1_700_000_000_000 + k * 5 + (k * 7 % 3);
                let i = (1_000 + k / 4) as f64;
                let points = vec![
                    p(&device, "a", ts, i + 0.25),
                    p(&device, "b", ts, (k / 4 % 97) as f64 * 0.5),
                ];
                (BatchSeq(10_000 + k), 0, points)
            })
            .collect()
    }

    fn as_refs(batches: &[(BatchSeq, u32, Vec<Point>)]) -> Vec<(BatchSeq, u32, &[Point])> {
        batches
            .iter()
            .map(|(s, part, p)| (*s, *part, p.as_slice()))
            .collect()
    }

    #[test]
    fn many_small_batches_cost_under_two_bytes_a_point_in_version_2() {
        let inc = Incarnation([3; 16]);
        let batches = small_commits(200);
        let refs = as_refs(&batches);
        let v2 = encode(inc, &refs);
        let v1 = encode_v1(inc, &refs);
        assert_eq!(v2[0], BATCH_VERSION);
        let back = decode(&v2).unwrap();
        assert_eq!(back, decode(&v1).unwrap());
        for (b, (seq, part, points)) in back.batches.iter().zip(&batches) {
            assert_eq!((b.seq, b.part, &b.points), (*seq, *part, points));
        }
        let per_point = |bytes: &[u8]| bytes.len() as f64 / 400.0;
        println!(
            "200 small batches, 400 points: version 2 {:.2} B/point, version 1 {:.2}",
            per_point(&v2),
            per_point(&v1)
        );
        assert!(
            per_point(&v2) < 2.0,
            "version 2: {:.2} B/point (version 1: {:.2})",
            per_point(&v2),
            per_point(&v1)
        );
        assert!(per_point(&v1) > 4.0, "{:.2}", per_point(&v1));
    }

    #[test]
    fn a_cloud_still_reads_an_older_edges_version_1_messages() {
        let inc = Incarnation([9; 16]);
        let mut batches = small_commits(12);
        // Parts of one batch, and noisy values (the XOR coding of version 2).
        batches.push((BatchSeq(20_000), 0, vec![p("dev-0", "a", 5, 0.1)]));
        batches.push((
            BatchSeq(20_000),
            1,
            (0..50)
                .map(|i| p("dev-9", "n", i, (i as f64 * 1.7).sin() * 1e3))
                .collect(),
        ));
        let refs = as_refs(&batches);
        let old = encode_v1(inc, &refs);
        assert_eq!(old[0], VERSION);
        let new = encode(inc, &refs);
        assert_eq!(new[0], BATCH_VERSION);
        assert_eq!(decode(&old).unwrap(), decode(&new).unwrap());
        assert_eq!(decode(&old).unwrap().batches.len(), 14);
        // Seqs out of order (never sent by the link) still encode, in version 1.
        let backwards = [refs[1], refs[0]];
        let bytes = encode(inc, &backwards);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes).unwrap().batches[0].seq, refs[1].0);
    }

    proptest::proptest! {
        #[test]
        fn any_batches_in_seq_order_round_trip_in_version_2(
            batches in proptest::collection::vec(
                (0i64..3, 0u32..3, proptest::collection::vec(
                    (0usize..3, proptest::num::i64::ANY, proptest::num::u64::ANY, 0u8..4),
                    0..20,
                )),
                1..12,
            ),
        ) {
            let mut seq = 0;
            let batches: Vec<(BatchSeq, u32, Vec<Point>)> = batches
                .into_iter()
                .map(|(step, part, points)| {
                    seq += step;
                    let points = points
                        .into_iter()
                        .map(|(s, ts, bits, kind)| {
                            // Raw bits, small steps and repeats: every coding and class.
                            let value = match kind {
                                0 => f64::from_bits(bits),
                                1 => (bits % 1_000) as f64 * 0.5,
                                2 => 21.5,
                                _ => ts as f64,
                            };
                            p(&format!("d{s}"), "m", ts % 1_000_000_007 * (1 + (s as i64)), value)
                        })
                        .collect();
                    (BatchSeq(seq), part, points)
                })
                .collect();
            let refs = as_refs(&batches);
            let bytes = encode(Incarnation([5; 16]), &refs);
            proptest::prop_assert_eq!(bytes[0], BATCH_VERSION);
            let back = decode(&bytes).unwrap();
            let old = decode(&encode_v1(Incarnation([5; 16]), &refs)).unwrap();
            // Bit for bit (NaN payloads too).
            let bits = |m: &WireMessage| -> BatchBits {
                m.batches
                    .iter()
                    .map(|b| (b.seq.0, b.part, b.points.iter()
                        .map(|p| (p.device.to_string(), p.ts_ms, p.value.to_bits()))
                        .collect()))
                    .collect()
            };
            proptest::prop_assert_eq!(bits(&back), bits(&old));
        }
    }

    #[test]
    fn the_densest_version_2_message_still_decodes() {
        // Four metrics of one device, a steady cadence and constant values: about a bit a
        // point, within the decoder's bound on points a byte.
        let points: Vec<Point> = (0..4_000)
            .map(|i| {
                p(
                    "dev",
                    ["w", "x", "y", "z"][i % 4],
                    (i / 4) as i64 * 1000,
                    1.0,
                )
            })
            .collect();
        let bytes = encode(Incarnation([2; 16]), &[(BatchSeq(1), 0, &points)]);
        assert!(bytes.len() < 4_000 / 4, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap().batches[0].points.len(), 4_000);
    }

    #[test]
    fn registry_records_round_trip_and_are_checked() {
        let r = RegistryRecord {
            id: "pump-1".into(),
            name: "Pump 1".into(),
            kind: "pump".into(),
            labels: [("site".to_string(), "north".to_string())].into(),
        };
        let bytes = encode_registry(std::slice::from_ref(&r));
        assert_eq!(decode_registry(&bytes).unwrap(), vec![r.clone()]);
        let bad = RegistryRecord {
            id: "no spaces".into(),
            ..r
        };
        assert!(decode_registry(&encode_registry(&[bad])).is_err());
        assert!(decode_registry(&[]).is_err());
        assert!(decode_registry(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_registry_message_says_every_device_the_edge_holds_and_an_old_one_does_not() {
        let r = RegistryRecord {
            id: "pump-1".into(),
            name: "Pump 1".into(),
            kind: "pump".into(),
            labels: Default::default(),
        };
        let all = vec!["pump-1".to_string(), "pump-2".to_string()];
        let bytes = encode_registry_snapshot(std::slice::from_ref(&r), &all);
        assert_eq!(
            decode_registry_message(&bytes).unwrap(),
            RegistryMessage {
                devices: vec![r.clone()],
                all: Some(all),
            }
        );
        // None changed, none held: an edge that deleted its last device.
        let empty = decode_registry_message(&encode_registry_snapshot(&[], &[])).unwrap();
        assert_eq!(empty.all, Some(vec![]));
        // An edge before deletions went up: no set, nothing deleted.
        let old = decode_registry_message(&encode_registry(std::slice::from_ref(&r))).unwrap();
        assert_eq!((old.devices, old.all), (vec![r], None));
        let bad = encode_registry_snapshot(&[], &["no spaces".to_string()]);
        assert!(decode_registry_message(&bad).is_err());
        assert!(decode_registry_message(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn an_edge_sends_alerts_on_its_devices_and_on_itself_never_on_another_edge() {
        let edge = sentio_core::EdgeId::parse("site-1").unwrap();
        let alert = |device: &str| sentio_core::Alert {
            id: sentio_core::AlertId::new(3),
            device: device.into(),
            metric: sentio_core::Subject::Device.label(),
            state: sentio_core::AlertState::Open,
            opened_ms: 1_000,
            last_anomaly_ms: 2_000,
            resolved_ms: None,
            anomalous_points: 0,
            explanation: sentio_core::Explanation::default(),
            peak: sentio_core::Explanation::default(),
            feedback: None,
            ack: None,
            resolved_by: None,
            silenced_by: None,
        };
        let on = |device: &str| encode_alerts(&[alert(device)]);
        assert_eq!(
            decode_edge_alerts(&on("pump-1"), &edge).unwrap(),
            vec![alert("pump-1")]
        );
        assert_eq!(
            decode_edge_alerts(&on("edge:site-1"), &edge).unwrap(),
            vec![alert("edge:site-1")]
        );
        assert!(decode_edge_alerts(&on("edge:site-2"), &edge).is_err());
        assert!(decode_alerts(&on("edge:site-1")).is_err());
    }

    #[test]
    fn status_reports_round_trip() {
        for r in [
            StatusReport::default(),
            StatusReport {
                pending_batches: 3,
                pending_points: 4_000,
                oldest_pending_age_ms: Some(0),
                acked: BatchSeq(77),
                backlog_batches: 2,
                backlog_points: 3_000,
                backlog_drain_rate: 500,
                policy: crate::UplinkPolicy::Aggregates,
                clock_ms: Some(1_780_000_000_000),
                degraded_points: 12_345,
                dropped_points: 7,
            },
        ] {
            let full = encode_status(&r);
            assert_eq!(decode_status(&full).unwrap(), r);
            // A report from an edge before budget counts: none; one before clock checks: no
            // clock.
            let r = StatusReport {
                clock_ms: None,
                degraded_points: 0,
                dropped_points: 0,
                ..r
            };
            let bytes = encode_status(&r);
            let bytes = &bytes[..bytes.len() - 2];
            assert_eq!(decode_status(bytes).unwrap(), r);
            assert_eq!(decode_status(&bytes[..bytes.len() - 1]).unwrap(), r);
            let bytes = &bytes[..bytes.len() - 1];
            // A report from an edge before policies: raw.
            let before_policy = decode_status(&bytes[..bytes.len() - 1]).unwrap();
            assert_eq!(before_policy.policy, crate::UplinkPolicy::Raw);
            assert_eq!(before_policy.backlog_drain_rate, r.backlog_drain_rate);
            // A report from an edge before lanes: no backlog.
            // The zeroed one's three 1-byte backlog varints, its clock and two budget counts,
            // and the policy.
            let trailing = bytes.len() + 7
                - encode_status(&StatusReport {
                    backlog_batches: 0,
                    backlog_points: 0,
                    backlog_drain_rate: 0,
                    ..r
                })
                .len();
            let old = decode_status(&bytes[..bytes.len() - trailing]).unwrap();
            assert_eq!((old.acked, old.backlog_points), (r.acked, 0));
        }
    }

    #[test]
    fn clock_skew_is_the_edge_clock_against_the_arrival() {
        let at = 1_780_000_000_000;
        let report = |clock_ms| StatusReport {
            clock_ms,
            ..StatusReport::default()
        };
        // An edge an hour ahead, one 90 s behind, one in step, one before clock checks.
        assert_eq!(
            report(Some(at + 3_600_000)).clock_skew_ms(at),
            Some(3_600_000)
        );
        assert_eq!(report(Some(at - 90_000)).clock_skew_ms(at), Some(-90_000));
        assert_eq!(report(Some(at)).clock_skew_ms(at), Some(0));
        assert_eq!(report(None).clock_skew_ms(at), None);
        // Through the wire as the cloud receives it.
        let sent = encode_status(&report(Some(at + 3_600_000)));
        assert_eq!(
            decode_status(&sent).unwrap().clock_skew_ms(at + 20),
            Some(3_600_000 - 20)
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let points: Vec<Point> = (0..40).map(|i| p("dev", "m", i * 10, i as f64)).collect();
        let small = small_commits(9);
        let mut batches = as_refs(&small);
        batches.push((BatchSeq(30_000), 3, &points));
        for bytes in [
            encode_v1(Incarnation([1; 16]), &[(BatchSeq(1), 0, &points)]),
            encode(Incarnation([1; 16]), &batches),
        ] {
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
            }
            for i in 0..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = bytes.clone();
                    bad[i] ^= flip;
                    let _ = decode(&bad);
                }
            }
        }
        for version in [VERSION, BATCH_VERSION] {
            let mut huge = vec![version];
            huge.extend_from_slice(&[0; 16]);
            huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
            assert!(decode(&huge).is_err());
        }
        // Version 2: one shape of a huge run, used by many batches.
        let mut many = vec![BATCH_VERSION];
        many.extend_from_slice(&[0; 16]);
        many.extend_from_slice(&[1, 1, b'd', 1, b'm', 1, 1, 0, 100, 50, 0]);
        many.extend(std::iter::repeat_n(2u8, 50));
        many.extend(std::iter::repeat_n(0u8, 200));
        assert!(decode(&many).is_err());
    }
}
