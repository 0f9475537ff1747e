//! Smart-building rooms: occupancy follows office hours (UTC time of day, weekdays), and drives
//! CO2 and temperature; light combines daylight with artificial lighting when occupied.
//!
//! A room obeys `lights` (`auto`: on the office schedule and whenever someone is in; `on`;
//! `off`), `hvac_mode` (`schedule`: comfort on weekdays 06:00-19:00 UTC, setback otherwise;
//! `comfort`; `setback`: the economy set-point of an empty room, 16 °C, below the night one;
//! `off`: free-floating), `hvac_setpoint` (the comfort set-point, °C) and
//! `ventilation` (`auto`, `boost`: CO2 falls, the fan draws more). Its `power_w` is what the
//! room's lights, heat pump and fan draw: the heat pump delivers `UA × (set-point − outdoor)`
//! at a COP of 3, so a setback lowers it at once and the temperature follows in about 15 min.
//! Left alone (`auto`, `schedule`, `auto`) a room behaves as it always did: the metrics other
//! than `power_w` are the same values for the same seed.

use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::control::{Property, Setting, Values};
use crate::faults::Effect;
use crate::model::{DeviceModel, MetricSpec};
use crate::noise::{Wander, gauss, hour_of_day, quantize, relax, uniform, weekday};

pub(crate) const METRICS: &[&str] = &[
    "temperature",
    "humidity",
    "co2",
    "light",
    "occupancy",
    "power_w",
];

const PROPERTIES: &[Property] = &[
    Property {
        name: "lights",
        values: Values::OneOf(&["auto", "on", "off"]),
    },
    Property {
        name: "hvac_mode",
        values: Values::OneOf(&["schedule", "comfort", "setback", "off"]),
    },
    Property {
        name: "hvac_setpoint",
        values: Values::Range {
            min: 16.0,
            max: 26.0,
        },
    },
    Property {
        name: "ventilation",
        values: Values::OneOf(&["auto", "boost"]),
    },
];

/// Artificial light, lux.
const ARTIFICIAL_LUX: f64 = 400.0;
/// Lighting power per seat of capacity, W, and a fixed part.
const LIGHT_W_PER_SEAT: f64 = 40.0;
const LIGHT_W_BASE: f64 = 100.0;
/// Heat loss per seat of capacity, W/K, and a fixed part.
const UA_PER_SEAT: f64 = 12.0;
const UA_BASE: f64 = 30.0;
/// The heat pump's coefficient of performance.
const COP: f64 = 3.0;
/// Fan power, W, normal and boosted; a boost removes this share of the occupants' CO2.
const FAN_W: f64 = 60.0;
const FAN_BOOST_W: f64 = 250.0;
const BOOST_CO2_FACTOR: f64 = 0.55;
/// The economy set-point of `setback`, °C (the night set-points are 17.5-19).
const ECO_SETPOINT: f64 = 16.0;
/// Where an unheated room settles, °C (before occupants and sun).
const FREE_FLOAT: f64 = 15.0;
/// The power meter's noise, W.
const METER_NOISE_W: f64 = 3.0;

const SPECS: &[MetricSpec] = &[
    MetricSpec {
        name: "temperature",
        precision: 0.01,
        min: -10.0,
        max: 60.0,
    },
    MetricSpec {
        name: "humidity",
        precision: 0.1,
        min: 0.0,
        max: 100.0,
    },
    MetricSpec {
        name: "co2",
        precision: 1.0,
        min: 350.0,
        max: 5000.0,
    },
    MetricSpec {
        name: "light",
        precision: 1.0,
        min: 0.0,
        max: 20_000.0,
    },
    MetricSpec {
        name: "occupancy",
        precision: 1.0,
        min: 0.0,
        max: 100.0,
    },
    MetricSpec {
        name: "power_w",
        precision: 1.0,
        min: 0.0,
        max: 100_000.0,
    },
];

/// Outdoor CO2 concentration, ppm.
const OUTDOOR_CO2: f64 = 420.0;

/// Fraction of a room's capacity expected present at hour `h` (UTC) of a given weekday.
pub(crate) fn occupancy_profile(h: f64, weekday: i64) -> f64 {
    if weekday >= 5 {
        return 0.0;
    }
    match h {
        h if h < 7.0 => 0.0,
        h if h < 9.0 => 0.8 * (h - 7.0) / 2.0,
        h if h < 12.0 => 0.8,
        h if h < 13.0 => 0.45,
        h if h < 17.0 => 0.8,
        h if h < 19.0 => 0.8 * (19.0 - h) / 2.0,
        _ => 0.0,
    }
}

/// Whether the HVAC runs its daytime setpoint (weekdays 06:00-19:00 UTC).
fn hvac_day(h: f64, weekday: i64) -> bool {
    weekday < 5 && (6.0..19.0).contains(&h)
}

/// Outdoor temperature, °C: a winter day, coldest at 03:00 UTC.
pub(crate) fn outdoor_temperature(h: f64) -> f64 {
    5.0 + 3.0 * (std::f64::consts::TAU * (h - 9.0) / 24.0).sin()
}

/// Daylight factor in `[0, 1]`: a half sine between 06:00 and 18:00 UTC.
fn daylight(h: f64) -> f64 {
    if (6.0..18.0).contains(&h) {
        (std::f64::consts::PI * (h - 6.0) / 12.0).sin()
    } else {
        0.0
    }
}

pub(crate) struct Room {
    capacity: i64,
    occupancy: i64,
    temperature: f64,
    co2: f64,
    setpoint_day: f64,
    setpoint_night: f64,
    base_humidity: f64,
    co2_per_person: f64,
    window_lux: f64,
    temp_wander: Wander,
    humidity_wander: Wander,
    cloud: Wander,
    lights: &'static str,
    hvac_mode: &'static str,
    ventilation: &'static str,
    /// The power meter's own noise, apart from the model's stream so that `power_w` changes
    /// no other metric.
    meter: ChaCha8Rng,
}

impl Room {
    pub(crate) fn new(rng: &mut ChaCha8Rng, meter: ChaCha8Rng, start_ms: i64) -> Self {
        let capacity = 4 + (uniform(rng, 0.0, 9.0) as i64);
        let mut room = Self {
            capacity,
            occupancy: 0,
            temperature: 0.0,
            co2: OUTDOOR_CO2,
            setpoint_day: uniform(rng, 21.0, 22.5),
            setpoint_night: uniform(rng, 17.5, 19.0),
            base_humidity: uniform(rng, 36.0, 48.0),
            co2_per_person: uniform(rng, 45.0, 70.0),
            window_lux: uniform(rng, 150.0, 600.0),
            temp_wander: Wander::new(rng, 0.15, 900.0),
            humidity_wander: Wander::new(rng, 1.5, 1800.0),
            cloud: Wander::new(rng, 0.25, 1200.0),
            lights: "auto",
            hvac_mode: "schedule",
            ventilation: "auto",
            meter,
        };
        room.occupancy = room.target_occupancy(start_ms);
        room.co2 = room.co2_target();
        room.temperature = room.temperature_target(start_ms);
        room
    }

    fn target_occupancy(&self, ts_ms: i64) -> i64 {
        let p = occupancy_profile(hour_of_day(ts_ms), weekday(ts_ms));
        (self.capacity as f64 * p).round() as i64
    }

    fn co2_target(&self) -> f64 {
        let boost = if self.ventilation == "boost" {
            BOOST_CO2_FACTOR
        } else {
            1.0
        };
        OUTDOOR_CO2 + self.co2_per_person * self.occupancy as f64 * boost
    }

    /// The HVAC's set-point at `ts_ms`, or `None` while it is off.
    fn setpoint(&self, ts_ms: i64) -> Option<f64> {
        match self.hvac_mode {
            "off" => None,
            "comfort" => Some(self.setpoint_day),
            "setback" => Some(ECO_SETPOINT),
            _ if hvac_day(hour_of_day(ts_ms), weekday(ts_ms)) => Some(self.setpoint_day),
            _ => Some(self.setpoint_night),
        }
    }

    fn temperature_target(&self, ts_ms: i64) -> f64 {
        let h = hour_of_day(ts_ms);
        let base = self.setpoint(ts_ms).unwrap_or(FREE_FLOAT);
        base + 0.12 * self.occupancy as f64 + 0.6 * daylight(h)
    }

    /// Whether the artificial lights are on.
    fn lit(&self, ts_ms: i64) -> bool {
        match self.lights {
            "on" => true,
            "off" => false,
            _ => self.target_occupancy(ts_ms) > 0 || self.occupancy > 0,
        }
    }

    /// What lights, heat pump and fan draw, W.
    fn power_w(&self, ts_ms: i64) -> f64 {
        let seats = self.capacity as f64;
        let lights = if self.lit(ts_ms) {
            LIGHT_W_BASE + LIGHT_W_PER_SEAT * seats
        } else {
            0.0
        };
        let heat = self.setpoint(ts_ms).map_or(0.0, |sp| {
            let lift = sp - outdoor_temperature(hour_of_day(ts_ms));
            (UA_BASE + UA_PER_SEAT * seats) * lift.abs() / COP
        });
        let fan = if self.ventilation == "boost" {
            FAN_BOOST_W
        } else {
            FAN_W
        };
        lights + heat + fan
    }

    fn step_occupancy(&mut self, ts_ms: i64, dt_s: f64, rng: &mut ChaCha8Rng) {
        let target = self.target_occupancy(ts_ms);
        // People arrive or leave one at a time, about every 45 s while the room is off target.
        if target != self.occupancy && uniform(rng, 0.0, 1.0) < 1.0 - (-dt_s / 45.0).exp() {
            self.occupancy += (target - self.occupancy).signum();
        }
        // During office hours someone wanders in or out every few minutes.
        if target > 0 && uniform(rng, 0.0, 1.0) < 1.0 - (-dt_s / 240.0).exp() {
            let delta = if uniform(rng, 0.0, 1.0) < 0.5 { -1 } else { 1 };
            self.occupancy = (self.occupancy + delta).clamp(0, self.capacity);
        }
    }
}

impl DeviceModel for Room {
    fn metrics(&self) -> &'static [MetricSpec] {
        SPECS
    }

    fn sample(
        &mut self,
        ts_ms: i64,
        dt_s: f64,
        rng: &mut ChaCha8Rng,
        _effects: &[Effect],
    ) -> Vec<f64> {
        let h = hour_of_day(ts_ms);
        self.step_occupancy(ts_ms, dt_s, rng);
        self.co2 = relax(self.co2, self.co2_target(), dt_s, 600.0);
        self.temperature = relax(
            self.temperature,
            self.temperature_target(ts_ms),
            dt_s,
            900.0,
        );

        let temp_wander = self.temp_wander.step(rng, dt_s);
        let temperature = self.temperature + temp_wander + 0.04 * gauss(rng);
        let humidity =
            self.base_humidity + 0.4 * self.occupancy as f64 + self.humidity_wander.step(rng, dt_s)
                - 0.8 * (self.temperature - 21.0)
                + 0.25 * gauss(rng);
        let co2 = self.co2 + 6.0 * gauss(rng);
        let cloud = (1.0 + self.cloud.step(rng, dt_s)).clamp(0.3, 1.4);
        // Left on auto, lights run on the office schedule, and whenever someone is in the room.
        let artificial = if self.lit(ts_ms) { ARTIFICIAL_LUX } else { 0.0 };
        let lux = self.window_lux * daylight(h) * cloud + artificial;
        let light = lux + (2.0 + 0.01 * lux) * gauss(rng);
        let power = self.power_w(ts_ms) + METER_NOISE_W * gauss(&mut self.meter);
        vec![
            temperature,
            humidity,
            co2,
            light,
            self.occupancy as f64,
            power,
        ]
    }

    fn properties(&self) -> &'static [Property] {
        PROPERTIES
    }

    fn set(&mut self, property: &Property, setting: Setting) {
        match property.name {
            "lights" => self.lights = setting.word(),
            "hvac_mode" => self.hvac_mode = setting.word(),
            "hvac_setpoint" => self.setpoint_day = setting.number(),
            "ventilation" => self.ventilation = setting.word(),
            _ => {}
        }
    }

    fn state(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("lights".into(), self.lights.into());
        m.insert("hvac_mode".into(), self.hvac_mode.into());
        m.insert(
            "hvac_setpoint".into(),
            crate::control::number(quantize(self.setpoint_day, 0.1)),
        );
        m.insert("ventilation".into(), self.ventilation.into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_hours_profile() {
        assert_eq!(occupancy_profile(3.0, 1), 0.0);
        assert_eq!(occupancy_profile(10.0, 1), 0.8);
        assert!(occupancy_profile(12.5, 1) < occupancy_profile(10.0, 1));
        assert_eq!(occupancy_profile(10.0, 6), 0.0, "Sunday is empty");
        assert!(daylight(12.0) > 0.99 && daylight(22.0) == 0.0);
    }

    #[test]
    fn occupancy_drives_co2_and_temperature() {
        // Monday 2024-01-01 04:00Z, then run through to 11:00Z at 10 s steps.
        let start = 1_704_081_600_000;
        let mut rng = crate::noise::stream(1, 1);
        let mut room = Room::new(&mut rng, crate::noise::stream(1, 2), start);
        let night = room.sample(start, 0.0, &mut rng, &[]);
        let mut day = night.clone();
        for i in 1..=(7 * 360) {
            day = room.sample(start + i * 10_000, 10.0, &mut rng, &[]);
        }
        assert_eq!(night[4], 0.0, "empty at night");
        assert!(day[4] >= 2.0, "occupied at 11:00: {}", day[4]);
        assert!(day[2] > night[2] + 100.0, "co2 {} vs {}", day[2], night[2]);
        assert!(day[0] > night[0] + 1.0, "temp {} vs {}", day[0], night[0]);
        assert!(
            day[3] > night[3] + 300.0,
            "light {} vs {}",
            day[3],
            night[3]
        );
    }
}
