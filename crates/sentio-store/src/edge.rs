//! Store-and-forward between an edge node and the cloud: what the two seams
//! ([`crate::OutboxStore`] on the edge, [`crate::EdgeStore`] in the cloud) speak of.
//!
//! The edge's store is its own outbox: with the outbox on, every committed append is a batch
//! with a [`BatchSeq`], recorded in the append's transaction (the batch names its points by
//! series and time range; the points are not copied). An [`Incarnation`] names one life of a
//! data directory: a new one when the directory is created and when a backup is restored, so
//! that the cloud never takes a restored edge's reused sequence numbers for duplicates.

use sentio_core::{EdgeId, Point};

/// The sequence number of a committed batch on an edge, increasing within an incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BatchSeq(pub i64);

/// One life of a data directory: 16 random bytes, new when the directory is created and when
/// a backup is restored into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Incarnation(pub [u8; 16]);

impl Incarnation {
    /// A fresh random incarnation.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .expect("the operating system's random generator is unavailable");
        Self(bytes)
    }

    /// Lower-case hex, as shown in the API.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`Incarnation::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// The lane a batch travels in. Each lane is its own ordered stream: the edge sends a lane's
/// batches in seq order and the cloud applies each (incarnation, lane, seq, part) once, so a
/// batch belongs to one lane for ever (chosen in its commit's transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Live points: committed while the uplink was up; sent first.
    Points,
    /// Points committed while the uplink was down: drained beside the live lane at a bounded
    /// rate.
    Backlog,
    /// 1-minute rollups of an edge with the aggregates policy, recorded as the edge's store
    /// rolls minutes up ([`RollupBatch`]).
    Rollups,
}

impl Lane {
    /// Every lane.
    pub const ALL: [Lane; 3] = [Lane::Points, Lane::Backlog, Lane::Rollups];

    /// The lane's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Points => "points",
            Lane::Backlog => "backlog",
            Lane::Rollups => "rollups",
        }
    }

    /// Parses [`Lane::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// Most points recorded in one part of a batch (a group commit may hold tens of thousands;
/// each part must fit one MQTT packet). A part holds whole series, so a series of more points
/// is one part of its own.
pub const PART_POINTS: u32 = 4_096;

/// A committed batch read back from the outbox, with its points as they are stored now (a
/// point replaced since by a later write goes with its newer value), in parts of whole series
/// of at most [`PART_POINTS`] recorded points. The split depends only on what was recorded at
/// commit, so a batch read again is split the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxBatch {
    /// Its sequence number.
    pub seq: BatchSeq,
    /// When it was committed (ms).
    pub committed_ms: i64,
    /// Its points in parts (at least one), each by series then time.
    pub parts: Vec<Vec<Point>>,
}

impl OutboxBatch {
    /// Every point of the batch.
    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.parts.iter().flatten()
    }
}

/// What goes up from an edge: every point (`raw`, the default), or each closed minute's
/// rollup per series plus the raw points around each alert the edge opens (`aggregates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkPolicy {
    /// Every committed point (lanes [`Lane::Points`] and [`Lane::Backlog`]).
    #[default]
    Raw,
    /// 1-minute rollups ([`Lane::Rollups`]), and raw points only around alerts.
    Aggregates,
}

impl UplinkPolicy {
    /// Its name, as configured and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            UplinkPolicy::Raw => "raw",
            UplinkPolicy::Aggregates => "aggregates",
        }
    }

    /// Parses [`UplinkPolicy::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [UplinkPolicy::Raw, UplinkPolicy::Aggregates]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// What [`crate::OutboxStore::record_window`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRecorded {
    /// The raw points of the window are a batch of the live lane now.
    Recorded,
    /// Not yet: no series of the device has a point at or after the window's end (its data
    /// may still be coming) and `settled` was not given.
    Waiting,
    /// The alert, or a later one, was recorded before: nothing done.
    Done,
}

/// The 1-minute rollup rows of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRollups {
    /// The series' device.
    pub device: sentio_core::DeviceId,
    /// Its metric.
    pub metric: std::sync::Arc<str>,
    /// Rows by minute (each a whole minute's, as the store keeps it).
    pub rows: Vec<crate::RollupRow>,
}

/// A batch of the rollups lane read back from the outbox: the rows one rollup transaction of
/// the edge's store wrote, as they are stored now (a minute rolled again since goes with its
/// newer row).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupBatch {
    /// Its sequence number (shared with the other lanes).
    pub seq: BatchSeq,
    /// When it was committed (ms).
    pub committed_ms: i64,
    /// Its rows per series.
    pub series: Vec<SeriesRollups>,
}

/// One rollups batch arriving in the cloud from an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkRollups {
    /// The edge that sent it (the authenticated identity).
    pub edge: EdgeId,
    /// The edge's incarnation.
    pub incarnation: Incarnation,
    /// Its sequence number in that incarnation ([`Lane::Rollups`]).
    pub seq: BatchSeq,
    /// Its rows per series.
    pub series: Vec<SeriesRollups>,
}

/// How far one lane of the outbox has been delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneStatus {
    /// Every batch of this lane up to this one is acknowledged (0: none yet).
    pub acked: BatchSeq,
    /// Batches of this lane committed and not acknowledged.
    pub pending_batches: u64,
    /// Points in them.
    pub pending_points: u64,
    /// When the oldest of them was committed (ms).
    pub oldest_pending_ms: Option<i64>,
}

/// What one lane of the outbox took in and what became of it, in points (the rollups lane:
/// rows), kept in the database so they survive restarts. **Invariant:** `accepted ==
/// delivered + degraded + dropped + pending` ([`LaneCounts::balanced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LaneCounts {
    /// Recorded in the outbox (committed).
    pub accepted: u64,
    /// Acknowledged by the cloud.
    pub delivered: u64,
    /// Undelivered, replaced under the disk budget by their minutes' rollups (which go up on
    /// the rollups lane instead).
    pub degraded: u64,
    /// Undelivered, removed under the disk budget.
    pub dropped: u64,
    /// Still waiting to go up.
    pub pending: u64,
}

impl LaneCounts {
    /// Whether the identity holds.
    pub fn balanced(&self) -> bool {
        self.accepted == self.delivered + self.degraded + self.dropped + self.pending
    }
}

/// [`LaneCounts`] of every lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    /// The live lane ([`Lane::Points`]).
    pub live: LaneCounts,
    /// The backlog lane ([`Lane::Backlog`]).
    pub backlog: LaneCounts,
    /// The rollups lane ([`Lane::Rollups`]; rows).
    pub rollups: LaneCounts,
}

impl OutboxCounts {
    /// The counts of one lane.
    pub fn lane(&self, lane: Lane) -> &LaneCounts {
        match lane {
            Lane::Points => &self.live,
            Lane::Backlog => &self.backlog,
            Lane::Rollups => &self.rollups,
        }
    }

    /// Raw points (live and backlog lanes) degraded.
    pub fn degraded_points(&self) -> u64 {
        self.live.degraded + self.backlog.degraded
    }

    /// Raw points (live and backlog lanes) dropped.
    pub fn dropped_points(&self) -> u64 {
        self.live.dropped + self.backlog.dropped
    }
}

/// How far the outbox has been delivered: totals over the lanes, and each lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStatus {
    /// This data directory's incarnation.
    pub incarnation: Incarnation,
    /// Every batch up to this one is acknowledged by the cloud, whatever its lane (0: none yet).
    pub acked: BatchSeq,
    /// The last committed batch (0: none yet).
    pub last: BatchSeq,
    /// Batches committed and not acknowledged.
    pub pending_batches: u64,
    /// Points in them.
    pub pending_points: u64,
    /// When the oldest of them was committed (ms).
    pub oldest_pending_ms: Option<i64>,
    /// When the cloud last acknowledged a batch (ms).
    pub last_ack_ms: Option<i64>,
    /// The live lane ([`Lane::Points`]).
    pub live: LaneStatus,
    /// The backlog lane ([`Lane::Backlog`]).
    pub backlog: LaneStatus,
    /// The rollups lane ([`Lane::Rollups`]; its "points" are rows), not in the totals above.
    pub rollups: LaneStatus,
}

impl OutboxStatus {
    /// The status of one lane.
    pub fn lane(&self, lane: Lane) -> &LaneStatus {
        match lane {
            Lane::Points => &self.live,
            Lane::Backlog => &self.backlog,
            Lane::Rollups => &self.rollups,
        }
    }
}

/// One batch arriving in the cloud from an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkBatch {
    /// The edge that sent it (the authenticated identity, not a claim of the payload).
    pub edge: EdgeId,
    /// The edge's incarnation.
    pub incarnation: Incarnation,
    /// Its lane.
    pub lane: Lane,
    /// Its sequence number in that incarnation and lane.
    pub seq: BatchSeq,
    /// Which part of the batch (from 0; see [`PART_POINTS`]).
    pub part: u32,
    /// Its points.
    pub points: Vec<Point>,
}

/// What the cloud did with an [`UplinkBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its points and the edge's progress were committed in one transaction.
    Stored,
    /// It (or a later batch of the same incarnation and lane) was applied before: nothing was
    /// written, and it may be acknowledged again.
    Duplicate,
}

/// What the cloud did with an edge's registry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegistryApplied {
    /// Devices created or brought up to date under the edge.
    pub applied: u64,
    /// Devices left alone: the id is a device of this node or of another edge.
    pub conflicts: u64,
}

/// An edge node registered in the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Its id (MQTT username `edge:<id>`).
    pub id: EdgeId,
    /// When it was registered (ms).
    pub created_ms: i64,
    /// Its progress per incarnation and lane, the latest first.
    pub progress: Vec<EdgeProgress>,
    /// What it last reported it sends up (kept across restarts; none before its first report).
    pub policy: Option<UplinkPolicy>,
}

/// How far the cloud has applied an edge's batches in one incarnation and lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeProgress {
    /// The edge's incarnation.
    pub incarnation: Incarnation,
    /// The lane.
    pub lane: Lane,
    /// The last batch applied (all its parts up to `part`).
    pub seq: BatchSeq,
    /// The last part of it applied.
    pub part: u32,
    /// Points applied in this incarnation and lane.
    pub points: u64,
    /// When the last batch was applied (ms).
    pub updated_ms: i64,
}

/// MQTT username prefix of an edge node: `edge:<id>`.
pub const EDGE_USERNAME_PREFIX: &str = "edge:";

/// The MQTT username of an edge.
pub fn edge_username(id: &EdgeId) -> String {
    format!("{EDGE_USERNAME_PREFIX}{id}")
}
