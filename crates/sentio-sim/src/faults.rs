//! Fault injection: the seeded schedule of faults (the ground truth) and the sensor-level effects
//! (spike, level shift, stuck, drift). Physical faults (bearing fault, irregular rhythm) are
//! scheduled here but shaped by the device models themselves.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::noise::{stream, uniform};
use crate::spec::{DeviceKind, SimDevice};

/// What went wrong during a fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A burst of large excursions on every sample of the window (glitch, impact, artifact).
    Spike,
    /// A step change that holds for the window (e.g. HVAC failure, clogged pump).
    LevelShift,
    /// The sensor repeats its last value exactly (flat line).
    Stuck,
    /// A sensor offset growing linearly from zero over the window.
    Drift,
    /// A pump bearing degrading: vibration and bearing temperature rise progressively
    /// (exponentially), motor current slightly.
    BearingFault,
    /// An episode of irregular heart rhythm: heart rate becomes erratic with large beat-to-beat jumps.
    IrregularRhythm,
}

impl FaultKind {
    /// The snake_case name used in JSON (`"level_shift"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Spike => "spike",
            FaultKind::LevelShift => "level_shift",
            FaultKind::Stuck => "stuck",
            FaultKind::Drift => "drift",
            FaultKind::BearingFault => "bearing_fault",
            FaultKind::IrregularRhythm => "irregular_rhythm",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ground-truth record: `metric` of `device` is faulty for `start_ms <= ts < end_ms`.
/// Serialises as the JSON line `{"device","metric","start_ms","end_ms","kind"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub device: String,
    pub metric: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub kind: FaultKind,
}

impl Fault {
    /// Whether `ts_ms` falls inside the fault window (start inclusive, end exclusive).
    pub fn contains(&self, ts_ms: i64) -> bool {
        self.start_ms <= ts_ms && ts_ms < self.end_ms
    }
}

/// A scheduled fault episode on one device; may touch several metrics (a bearing fault does).
#[derive(Debug, Clone)]
pub(crate) struct Episode {
    pub device_index: usize,
    pub kind: FaultKind,
    pub metrics: &'static [&'static str],
    pub start_ms: i64,
    pub end_ms: i64,
    /// Kind-specific size: offset for spike/level shift/drift, unused otherwise.
    pub magnitude: f64,
}

/// An episode as a device model sees it at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effect {
    pub kind: FaultKind,
    pub metric: &'static str,
    /// 0 at the window start, approaching 1 at its end.
    pub progress: f64,
    pub magnitude: f64,
}

impl Effect {
    /// Offset a sensor-level fault adds to a healthy reading (stuck is handled by the caller).
    pub(crate) fn offset(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self.kind {
            FaultKind::Spike => self.magnitude * uniform(rng, 0.8, 1.2),
            FaultKind::LevelShift => self.magnitude,
            FaultKind::Drift => self.magnitude * self.progress,
            _ => 0.0,
        }
    }
}

/// A fault template: which kind hits which metrics, for how long, and how hard.
struct Template {
    kind: FaultKind,
    metrics: &'static [&'static str],
    weight: u32,
    duration_s: (f64, f64),
    /// Magnitude range; the sign is flipped with probability `negative`.
    magnitude: (f64, f64),
    negative: f64,
}

const ROOM_FAULTS: &[Template] = &[
    Template {
        kind: FaultKind::LevelShift,
        metrics: &["temperature"],
        weight: 3,
        duration_s: (120.0, 300.0),
        magnitude: (3.0, 5.0),
        negative: 0.3,
    },
    Template {
        kind: FaultKind::Spike,
        metrics: &["co2"],
        weight: 2,
        duration_s: (20.0, 40.0),
        magnitude: (600.0, 1000.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Stuck,
        metrics: &["humidity"],
        weight: 2,
        duration_s: (90.0, 240.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Stuck,
        metrics: &["temperature"],
        weight: 1,
        duration_s: (90.0, 240.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Drift,
        metrics: &["co2"],
        weight: 2,
        duration_s: (180.0, 360.0),
        magnitude: (250.0, 450.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Drift,
        metrics: &["humidity"],
        weight: 1,
        duration_s: (180.0, 360.0),
        magnitude: (10.0, 15.0),
        negative: 0.5,
    },
];

const PUMP_FAULTS: &[Template] = &[
    Template {
        kind: FaultKind::BearingFault,
        // Motor current also rises, but only by ~10 %, within its normal load variation: it is
        // not listed in the ground truth, which names what a detector should flag.
        metrics: &["vibration_rms", "bearing_temp"],
        weight: 3,
        duration_s: (180.0, 360.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Spike,
        metrics: &["vibration_rms"],
        weight: 2,
        duration_s: (20.0, 40.0),
        magnitude: (6.0, 10.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::LevelShift,
        metrics: &["motor_current"],
        weight: 2,
        duration_s: (60.0, 180.0),
        magnitude: (2.5, 4.0),
        negative: 0.5,
    },
    Template {
        kind: FaultKind::Stuck,
        metrics: &["bearing_temp"],
        weight: 1,
        duration_s: (90.0, 240.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Drift,
        metrics: &["bearing_temp"],
        weight: 1,
        duration_s: (180.0, 360.0),
        magnitude: (6.0, 10.0),
        negative: 0.0,
    },
];

const WEARABLE_FAULTS: &[Template] = &[
    Template {
        kind: FaultKind::IrregularRhythm,
        metrics: &["heart_rate"],
        weight: 3,
        duration_s: (60.0, 180.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Stuck,
        metrics: &["heart_rate"],
        weight: 1,
        duration_s: (60.0, 180.0),
        magnitude: (0.0, 0.0),
        negative: 0.0,
    },
    Template {
        kind: FaultKind::Spike,
        metrics: &["heart_rate"],
        weight: 2,
        duration_s: (20.0, 30.0),
        magnitude: (45.0, 60.0),
        negative: 0.0,
    },
];

fn templates(kind: DeviceKind) -> &'static [Template] {
    match kind {
        DeviceKind::Room => ROOM_FAULTS,
        DeviceKind::Pump => PUMP_FAULTS,
        DeviceKind::Wearable => WEARABLE_FAULTS,
    }
}

/// Offsets (from the fleet start) of the opening faults, one per device kind present:
/// a room HVAC failure, a pump bearing fault and a wearable irregular rhythm.
pub(crate) const FIRST_FAULT_OFFSET_S: f64 = 60.0;
const FIRST_WAVE_SPACING_S: f64 = 10.0;
/// Seconds between the starts of two consecutive recurring faults.
const RECURRING_GAP_S: (f64, f64) = (60.0, 180.0);
/// A device gets no new fault until this long after its previous one ended.
const COOLDOWN_MS: i64 = 60_000;
/// The longest fault episode any template can produce.
pub(crate) const MAX_EPISODE_MS: i64 = 360_000;
/// How far ahead of the latest step the schedule is kept.
pub(crate) const LOOKAHEAD_MS: i64 = 3_600_000;

/// Generates the fault schedule lazily, always in the same order, so the schedule depends only on
/// the seed, the fleet and the start, never on how far or how often it was extended.
pub(crate) struct Scheduler {
    rng: ChaCha8Rng,
    kinds: Vec<DeviceKind>,
    busy_until: Vec<i64>,
    next_start_ms: i64,
    /// Sorted by `start_ms` (the schedule is generated in time order).
    pub(crate) episodes: Vec<Episode>,
}

impl Scheduler {
    pub(crate) fn new(seed: u64, devices: &[SimDevice], start_ms: i64) -> Self {
        let kinds: Vec<DeviceKind> = devices.iter().map(|d| d.device_kind()).collect();
        let mut s = Self {
            rng: stream(seed, u64::MAX),
            busy_until: vec![i64::MIN; kinds.len()],
            kinds,
            next_start_ms: start_ms,
            episodes: Vec::new(),
        };
        s.first_wave(start_ms);
        s
    }

    fn first_wave(&mut self, start_ms: i64) {
        let mut offset_s = FIRST_FAULT_OFFSET_S;
        // Openers are kept short so they become obvious quickly: a bearing fault over 2.5-3.5
        // minutes is clearly visible within a minute of its start.
        let openers = [
            (DeviceKind::Room, FaultKind::LevelShift, (120.0, 180.0)),
            (DeviceKind::Pump, FaultKind::BearingFault, (150.0, 210.0)),
            (
                DeviceKind::Wearable,
                FaultKind::IrregularRhythm,
                (90.0, 150.0),
            ),
        ];
        for (device_kind, fault_kind, duration_s) in openers {
            let candidates: Vec<usize> = (0..self.kinds.len())
                .filter(|&i| self.kinds[i] == device_kind)
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let device = candidates[self.rng.random_range(0..candidates.len())];
            let template = templates(device_kind)
                .iter()
                .find(|t| t.kind == fault_kind)
                .expect("opener template exists");
            let start = start_ms + (offset_s * 1000.0) as i64;
            self.push(device, template, duration_s, start);
            offset_s += FIRST_WAVE_SPACING_S;
        }
        self.next_start_ms = start_ms + ((offset_s + 120.0) * 1000.0) as i64;
    }

    fn push(&mut self, device: usize, t: &Template, duration_s: (f64, f64), start_ms: i64) {
        let duration_ms = ((uniform(&mut self.rng, duration_s.0, duration_s.1) * 1000.0) as i64)
            .min(MAX_EPISODE_MS);
        let mut magnitude = uniform(
            &mut self.rng,
            t.magnitude.0,
            t.magnitude.1.max(t.magnitude.0),
        );
        if self.rng.random::<f64>() < t.negative {
            magnitude = -magnitude;
        }
        let end_ms = start_ms + duration_ms;
        self.busy_until[device] = end_ms + COOLDOWN_MS;
        self.episodes.push(Episode {
            device_index: device,
            kind: t.kind,
            metrics: t.metrics,
            start_ms,
            end_ms,
            magnitude,
        });
    }

    /// Episodes that may be active at `ts_ms` (a superset: callers check the window).
    pub(crate) fn candidates(&self, ts_ms: i64) -> &[Episode] {
        let lo = self
            .episodes
            .partition_point(|e| e.start_ms < ts_ms - MAX_EPISODE_MS);
        let hi = self.episodes.partition_point(|e| e.start_ms <= ts_ms);
        &self.episodes[lo..hi.max(lo)]
    }

    /// Schedules recurring faults until every fault starting before `until_ms` is known.
    pub(crate) fn extend_to(&mut self, until_ms: i64) {
        if self.kinds.is_empty() {
            return;
        }
        while self.next_start_ms < until_ms {
            let t0 = self.next_start_ms;
            let free: Vec<usize> = (0..self.kinds.len())
                .filter(|&i| self.busy_until[i] <= t0)
                .collect();
            if free.is_empty() {
                self.next_start_ms += 30_000;
                continue;
            }
            let device = free[self.rng.random_range(0..free.len())];
            let pool = templates(self.kinds[device]);
            let total: u32 = pool.iter().map(|t| t.weight).sum();
            let mut pick = self.rng.random_range(0..total);
            let template = pool
                .iter()
                .find(|t| {
                    if pick < t.weight {
                        true
                    } else {
                        pick -= t.weight;
                        false
                    }
                })
                .expect("weights cover the pick");
            self.push(device, template, template.duration_s, t0);
            let gap_s = uniform(&mut self.rng, RECURRING_GAP_S.0, RECURRING_GAP_S.1);
            self.next_start_ms = t0 + (gap_s * 1000.0) as i64;
        }
    }
}
