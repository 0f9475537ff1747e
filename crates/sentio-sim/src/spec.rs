//! What a fleet is made of: [`FleetSpec`] and the [`SimDevice`]s it describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Limits declared for the simulated device kinds (`KIND.METRIC<=MAX`, as `serve --limit` takes
/// them): a pump's bearing alarm at 90 °C. The demo declares them so that its developing
/// bearing faults are predicted before they cross it.
pub const DEMO_LIMITS: &[&str] = &["pump.bearing_temp<=90"];

/// How many devices of each kind to simulate, and the seed that makes the run reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSpec {
    pub seed: u64,
    pub rooms: usize,
    pub pumps: usize,
    pub wearables: usize,
}

impl FleetSpec {
    /// The demo fleet: 4 rooms, 3 pumps and 3 wearables, seed 42.
    pub fn demo() -> Self {
        Self {
            seed: 42,
            rooms: 4,
            pumps: 3,
            wearables: 3,
        }
    }

    /// The devices of this fleet, in a fixed order: rooms, then pumps, then wearables,
    /// with ids `room-1..`, `pump-1..`, `wearable-1..`.
    pub fn devices(&self) -> Vec<SimDevice> {
        let rooms = (1..=self.rooms).map(|i| {
            let floor = (i - 1) / 2 + 1;
            SimDevice::new(
                format!("room-{i}"),
                format!("Room {i} (floor {floor})"),
                DeviceKind::Room,
                &[
                    ("site", "hq"),
                    ("building", "a"),
                    ("floor", &floor.to_string()),
                ],
            )
        });
        let pumps = (1..=self.pumps).map(|i| {
            let line = (i - 1) / 2 + 1;
            SimDevice::new(
                format!("pump-{i}"),
                format!("Pump {i} (line {line})"),
                DeviceKind::Pump,
                &[("site", "plant-1"), ("line", &format!("line-{line}"))],
            )
        });
        let wearables = (1..=self.wearables).map(|i| {
            SimDevice::new(
                format!("wearable-{i}"),
                format!("Wearable {i}"),
                DeviceKind::Wearable,
                &[("site", "field"), ("cohort", "pilot")],
            )
        });
        rooms.chain(pumps).chain(wearables).collect()
    }

    /// Total number of devices.
    pub fn device_count(&self) -> usize {
        self.rooms + self.pumps + self.wearables
    }
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self::demo()
    }
}

/// One simulated device, as the platform should register it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDevice {
    /// Stable id, `[a-z0-9_-]+`; also the MQTT client id and username.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// `"room"`, `"pump"` or `"wearable"`.
    pub kind: String,
    /// Descriptive labels such as `site`, `floor`, `line`.
    pub labels: BTreeMap<String, String>,
}

impl SimDevice {
    fn new(id: String, name: String, kind: DeviceKind, labels: &[(&str, &str)]) -> Self {
        Self {
            id,
            name,
            kind: kind.as_str().to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The metrics this device publishes, in payload order.
    pub fn metrics(&self) -> &'static [&'static str] {
        self.device_kind().metrics()
    }

    pub(crate) fn device_kind(&self) -> DeviceKind {
        match self.kind.as_str() {
            "room" => DeviceKind::Room,
            "pump" => DeviceKind::Pump,
            _ => DeviceKind::Wearable,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    Room,
    Pump,
    Wearable,
}

impl DeviceKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Room => "room",
            DeviceKind::Pump => "pump",
            DeviceKind::Wearable => "wearable",
        }
    }

    pub(crate) fn metrics(self) -> &'static [&'static str] {
        match self {
            DeviceKind::Room => crate::building::METRICS,
            DeviceKind::Pump => crate::factory::METRICS,
            DeviceKind::Wearable => crate::wearable::METRICS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_devices_have_valid_unique_ids() {
        let devices = FleetSpec::demo().devices();
        assert_eq!(devices.len(), 10);
        let ids: std::collections::BTreeSet<_> = devices.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids.len(), devices.len());
        for d in &devices {
            assert!(
                d.id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
                "{}",
                d.id
            );
            assert!(["room", "pump", "wearable"].contains(&d.kind.as_str()));
            assert!(d.labels.contains_key("site"));
        }
        assert_eq!(devices[0].id, "room-1");
        assert_eq!(devices[4].id, "pump-1");
        assert_eq!(devices[9].id, "wearable-3");
        assert_eq!(devices[5].labels["line"], "line-1");
    }
}
