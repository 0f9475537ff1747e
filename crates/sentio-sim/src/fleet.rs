//! The deterministic generator: a [`Fleet`] steps every device to a timestamp and applies the
//! scheduled faults.

use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::building::Room;
use crate::control::{self, Property};
use crate::factory::Pump;
use crate::faults::{Effect, Episode, Fault, FaultKind, LOOKAHEAD_MS, Scheduler};
use crate::model::DeviceModel;
use crate::noise::{quantize, stream};
use crate::spec::{DeviceKind, FleetSpec, SimDevice};
use crate::wearable::Wearer;

/// One device's values at one instant, already rounded to sensor precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Device id, e.g. `"pump-2"`.
    pub device: String,
    /// Timestamp, Unix epoch milliseconds.
    pub ts_ms: i64,
    /// `(metric, value)` pairs in the device's fixed metric order.
    pub values: Vec<(String, f64)>,
}

impl Reading {
    /// The value of `metric`, if this device reports it.
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, v)| *v)
    }

    /// The telemetry payload `{"ts": <ms>, "<metric>": <value>, ...}`.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("ts".to_owned(), Value::from(self.ts_ms));
        for (metric, value) in &self.values {
            map.insert(metric.clone(), Value::from(*value));
        }
        Value::Object(map)
    }
}

/// Seeds the power meters' random streams apart from the models' (`"meter"`).
const METER_STREAMS: u64 = 0x6D_6574_6572;

struct SimulatedDevice {
    info: SimDevice,
    model: Box<dyn DeviceModel>,
    rng: ChaCha8Rng,
    last: Option<Vec<f64>>,
}

/// A seeded fleet of simulated devices. Feeding the same timestamps to two fleets built from the
/// same spec and start gives identical readings and identical ground truth.
pub struct Fleet {
    spec: FleetSpec,
    start_ms: i64,
    last_ts_ms: i64,
    devices: Vec<SimulatedDevice>,
    scheduler: Scheduler,
}

impl Fleet {
    /// Builds the fleet as it is at `start_ms` (Unix epoch ms); faults are scheduled relative to it.
    pub fn new(spec: FleetSpec, start_ms: i64) -> Self {
        let infos = spec.devices();
        let scheduler = Scheduler::new(spec.seed, &infos, start_ms);
        let devices = infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| {
                let mut rng = stream(spec.seed, i as u64);
                let meter = stream(spec.seed ^ METER_STREAMS, i as u64);
                let model: Box<dyn DeviceModel> = match info.device_kind() {
                    DeviceKind::Room => Box::new(Room::new(&mut rng, meter, start_ms)),
                    DeviceKind::Pump => Box::new(Pump::new(&mut rng, start_ms)),
                    DeviceKind::Wearable => Box::new(Wearer::new(&mut rng, start_ms)),
                };
                SimulatedDevice {
                    info,
                    model,
                    rng,
                    last: None,
                }
            })
            .collect();
        let mut fleet = Self {
            spec,
            start_ms,
            last_ts_ms: start_ms,
            devices,
            scheduler,
        };
        fleet.scheduler.extend_to(start_ms + LOOKAHEAD_MS);
        fleet
    }

    /// The spec this fleet was built from.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// The start timestamp (Unix epoch ms).
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// The devices, in the order readings are returned.
    pub fn devices(&self) -> impl Iterator<Item = &SimDevice> {
        self.devices.iter().map(|d| &d.info)
    }

    /// Advances every device to `ts_ms` and returns one reading per device. Call with
    /// non-decreasing timestamps (an earlier one is treated as no time passing).
    pub fn step(&mut self, ts_ms: i64) -> Vec<Reading> {
        let dt_s = (ts_ms - self.last_ts_ms).max(0) as f64 / 1000.0;
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
        self.scheduler.extend_to(self.last_ts_ms + LOOKAHEAD_MS);

        let episodes = self.scheduler.candidates(ts_ms);
        let mut readings = Vec::with_capacity(self.devices.len());
        for (index, device) in self.devices.iter_mut().enumerate() {
            let effects: Vec<Effect> = episodes
                .iter()
                .filter(|e| e.device_index == index && e.start_ms <= ts_ms && ts_ms < e.end_ms)
                .flat_map(|e| {
                    let progress =
                        (ts_ms - e.start_ms) as f64 / (e.end_ms - e.start_ms).max(1) as f64;
                    e.metrics.iter().map(move |&metric| Effect {
                        kind: e.kind,
                        metric,
                        progress,
                        magnitude: e.magnitude,
                    })
                })
                .collect();
            let raw = device.model.sample(ts_ms, dt_s, &mut device.rng, &effects);
            let specs = device.model.metrics();
            let mut values = Vec::with_capacity(raw.len());
            for (m, (spec, mut value)) in specs.iter().zip(raw).enumerate() {
                let mut stuck = false;
                for effect in effects.iter().filter(|e| e.metric == spec.name) {
                    if effect.kind == FaultKind::Stuck {
                        stuck = true;
                    } else {
                        value += effect.offset(&mut device.rng);
                    }
                }
                let value = match (&device.last, stuck) {
                    (Some(last), true) => last[m],
                    _ => quantize(value.clamp(spec.min, spec.max), spec.precision),
                };
                values.push(value);
            }
            readings.push(Reading {
                device: device.info.id.clone(),
                ts_ms,
                values: specs
                    .iter()
                    .zip(&values)
                    .map(|(s, v)| (s.name.to_owned(), *v))
                    .collect(),
            });
            device.last = Some(values);
        }
        readings
    }

    fn device_mut(&mut self, device: &str) -> Result<&mut SimulatedDevice, String> {
        self.devices
            .iter_mut()
            .find(|d| d.info.id == device)
            .ok_or_else(|| format!("no device {device:?} in this fleet"))
    }

    /// The properties `device` obeys (none for a wearable; `None` for an unknown device).
    pub fn properties(&self, device: &str) -> Option<&'static [Property]> {
        self.devices
            .iter()
            .find(|d| d.info.id == device)
            .map(|d| d.model.properties())
    }

    /// Carries out the command `name` with `params` on `device`: a property's name with
    /// `{"value": v}`, or an alias (a pump's `stop`, `start`). `Err`: why it was refused (an
    /// unknown command, a bad value); the device is then unchanged.
    pub fn command(&mut self, device: &str, name: &str, params: &Value) -> Result<(), String> {
        let d = self.device_mut(device)?;
        let (property, setting) =
            control::command(d.model.properties(), d.model.aliases(), name, params)?;
        d.model.set(property, setting);
        Ok(())
    }

    /// Applies a desired twin document to `device`: every property it knows, with a valid
    /// value, is set; returns why each other member was left out. `Err` when the device is
    /// unknown or `desired` is not an object.
    pub fn set_desired(&mut self, device: &str, desired: &Value) -> Result<Vec<String>, String> {
        let d = self.device_mut(device)?;
        let desired = desired
            .as_object()
            .ok_or_else(|| "the desired document is not an object".to_string())?;
        let (settings, refused) = control::check_desired(d.model.properties(), desired);
        for (property, setting) in settings {
            d.model.set(property, setting);
        }
        Ok(refused)
    }

    /// The current value of every property of `device` (its twin's `reported` document).
    pub fn reported(&self, device: &str) -> Option<Value> {
        self.devices
            .iter()
            .find(|d| d.info.id == device)
            .map(|d| Value::Object(d.model.state()))
    }

    /// Number of ground-truth records scheduled so far (the length of [`Fleet::ground_truth`]).
    pub(crate) fn scheduled_faults(&self) -> usize {
        self.scheduler
            .episodes
            .iter()
            .map(|e| e.metrics.len())
            .sum()
    }

    /// Every fault scheduled so far (at least an hour past the latest step), sorted by start.
    /// One record per affected metric: a bearing fault yields two (vibration and bearing
    /// temperature).
    pub fn ground_truth(&self) -> Vec<Fault> {
        self.records(self.scheduler.episodes.iter())
    }

    /// The faults active at `ts_ms` (`start_ms <= ts_ms < end_ms`).
    pub fn active_faults(&self, ts_ms: i64) -> Vec<Fault> {
        let active = self
            .scheduler
            .candidates(ts_ms)
            .iter()
            .filter(|e| ts_ms < e.end_ms);
        self.records(active)
    }

    /// The faults starting in `from_ms <= start_ms < to_ms` (scheduled so far).
    pub fn faults_starting(&self, from_ms: i64, to_ms: i64) -> Vec<Fault> {
        let episodes = &self.scheduler.episodes;
        let lo = episodes.partition_point(|e| e.start_ms < from_ms);
        let hi = episodes.partition_point(|e| e.start_ms < to_ms).max(lo);
        self.records(episodes[lo..hi].iter())
    }

    fn records<'a>(&self, episodes: impl Iterator<Item = &'a Episode>) -> Vec<Fault> {
        episodes
            .flat_map(|e| {
                let device = &self.devices[e.device_index].info.id;
                e.metrics.iter().map(move |metric| Fault {
                    device: device.clone(),
                    metric: (*metric).to_owned(),
                    start_ms: e.start_ms,
                    end_ms: e.end_ms,
                    kind: e.kind,
                })
            })
            .collect()
    }
}
