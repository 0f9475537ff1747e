//! Device scopes, enforced in one place: a scoped user (or its personal token) sees and acts on
//! the devices whose labels match its [`DeviceScope`] only. Every route that names a device, an
//! alert or a silence goes through these [`Actor`] methods. A device or an alert outside the
//! scope answers `404` as an unknown one would, so ids do not leak; a list leaves them out;
//! fleet-wide things answer `403` to a scoped caller. Admins are never scoped (the store
//! refuses it), so provisioning and the admin pages need no check.

use std::collections::{BTreeMap, HashMap};

use sentio_core::{Alert, AlertMatcher, DeviceId, Silence};
use sentio_store::{AlertFilter, Device};

use crate::auth::Actor;
use crate::{ApiError, AppState};

/// The answer for a device outside the caller's scope: the same as for an unknown one.
fn no_device(id: &str) -> ApiError {
    ApiError::not_found(format!("device {id:?} not found"))
}

impl Actor {
    /// Whether the caller may see every device.
    pub fn is_fleet_wide(&self) -> bool {
        self.scope.is_fleet()
    }

    /// `403` for a scoped caller: what the whole fleet shares (rules, groups).
    pub fn fleet_wide(&self) -> Result<(), ApiError> {
        if self.is_fleet_wide() {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this concerns the whole fleet; {} may see only devices labelled {}",
            self.name, self.scope
        )))
    }

    /// Whether a device with these labels is within the caller's scope.
    pub fn sees(&self, labels: &BTreeMap<String, String>) -> bool {
        self.scope.admits(labels)
    }

    /// `Ok` if the caller may see `device`; `404` (as for an unknown device) if it is outside
    /// the scope or, for a scoped caller, not registered. A fleet-wide caller costs no lookup.
    pub async fn admit(&self, s: &AppState, device: &DeviceId) -> Result<(), ApiError> {
        if self.is_fleet_wide() {
            return Ok(());
        }
        match s.registry.get_device(device).await? {
            Some(d) if self.sees(&d.labels) => Ok(()),
            _ => Err(no_device(device.as_str())),
        }
    }

    /// [`Actor::admit`] for a device named by its id as text.
    pub async fn admit_id(&self, s: &AppState, id: &str) -> Result<(), ApiError> {
        if self.is_fleet_wide() {
            return Ok(());
        }
        let device = DeviceId::parse(id).map_err(|_| no_device(id))?;
        self.admit(s, &device).await
    }

    /// The alert `id` if the caller may see it; `404` (as for an unknown alert) when it is
    /// unknown or of a device outside the scope.
    pub async fn alert(&self, s: &AppState, id: i64) -> Result<Alert, ApiError> {
        let missing = || ApiError::not_found(format!("no alert {id}"));
        let alert = s.alerts.get_alert(id).await?.ok_or_else(missing)?;
        self.admit_id(s, &alert.device)
            .await
            .map_err(|_| missing())?;
        Ok(alert)
    }

    /// The devices of the caller's scope (every device for a fleet-wide caller).
    pub async fn devices(&self, s: &AppState) -> Result<Vec<Device>, ApiError> {
        if self.is_fleet_wide() {
            return Ok(s.registry.list_devices().await?);
        }
        Ok(s.registry
            .devices_with_labels(self.scope.selector())
            .await?)
    }

    /// The devices a label selector picks within the caller's scope.
    pub async fn devices_with_labels(
        &self,
        s: &AppState,
        selector: &BTreeMap<String, String>,
    ) -> Result<Vec<Device>, ApiError> {
        match self.scope.narrow(selector) {
            Some(both) => Ok(s.registry.devices_with_labels(&both).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Alerts as `filter` asks, of the caller's devices only, newest first.
    pub async fn alerts(&self, s: &AppState, filter: AlertFilter) -> Result<Vec<Alert>, ApiError> {
        if self.is_fleet_wide() {
            return Ok(s.alerts.list_alerts(filter).await?);
        }
        if let Some(device) = &filter.device {
            if self.admit_id(s, device).await.is_err() {
                return Ok(Vec::new());
            }
            return Ok(s.alerts.list_alerts(filter).await?);
        }
        // Each device's newest `limit`, merged: exactly the newest `limit` of the scope.
        let mut all = Vec::new();
        for d in self.devices(s).await? {
            let one = AlertFilter {
                device: Some(d.id),
                ..filter.clone()
            };
            all.extend(s.alerts.list_alerts(one).await?);
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.id.get()));
        all.truncate(filter.limit);
        Ok(all)
    }

    /// A silence's matcher confined to the caller's scope: its labels narrowed to the scope
    /// (so it mutes nothing outside), each device it names admitted; `422` when the selector
    /// contradicts the scope.
    pub async fn confine(
        &self,
        s: &AppState,
        mut m: AlertMatcher,
    ) -> Result<AlertMatcher, ApiError> {
        if self.is_fleet_wide() {
            return Ok(m);
        }
        for d in &m.devices {
            self.admit(s, d).await?;
        }
        m.labels = self.scope.narrow(&m.labels).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_silence",
                format!("selector: its labels are outside the scope {}", self.scope),
            )
        })?;
        Ok(m)
    }

    /// Whether a silence mutes only within the caller's scope (a scoped caller sees and ends
    /// only those).
    pub fn covers(&self, silence: &Silence) -> bool {
        self.scope.narrow(&silence.matcher.labels).as_ref() == Some(&silence.matcher.labels)
    }
}

/// A stream's view of the scope: whether each device's events may be sent, looked up once per
/// device and again after [`StreamScope::REFRESH_MS`] (labels and scopes change).
pub struct StreamScope {
    actor: Actor,
    seen: HashMap<String, bool>,
    since_ms: i64,
}

impl StreamScope {
    /// How long a device's answer is kept.
    pub const REFRESH_MS: i64 = 10_000;

    /// A stream for `actor`.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            seen: HashMap::new(),
            since_ms: sentio_core::time::now_ms(),
        }
    }

    /// Whether an event of `device` (`None`: of no device) may be sent.
    pub async fn sends(&mut self, s: &AppState, device: Option<&str>) -> bool {
        let Some(device) = device else {
            return true;
        };
        if self.actor.is_fleet_wide() {
            return true;
        }
        let now = sentio_core::time::now_ms();
        if now - self.since_ms > Self::REFRESH_MS {
            self.seen.clear();
            self.since_ms = now;
        }
        if let Some(&ok) = self.seen.get(device) {
            return ok;
        }
        let ok = self.actor.admit_id(s, device).await.is_ok();
        self.seen.insert(device.to_string(), ok);
        ok
    }
}
