//! Registering a simulated fleet in a Sentio node through its HTTP API, so each simulated device
//! connects with its own credential, as a real one would.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{SimDevice, SimError};

/// Registers each device at `api` (e.g. `http://127.0.0.1:8080`) with the admin `token`, or
/// rotates its secret where it exists already (only digests are stored, so an old secret cannot
/// be recovered); returns device id → secret. Blocking: call it off the async runtime.
pub fn register_via_api(
    api: &str,
    token: &str,
    devices: &[SimDevice],
) -> Result<HashMap<String, String>, SimError> {
    let api = api.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let fail = |device: &str, reason: String| SimError::Register {
        device: device.to_string(),
        api: api.to_string(),
        reason,
    };
    let mut creds = HashMap::new();
    for d in devices {
        let mut resp = agent
            .post(&format!("{api}/api/v1/devices"))
            .header("Authorization", &auth)
            .send_json(json!({"id": d.id, "name": d.name, "kind": d.kind, "labels": d.labels}))
            .map_err(|e| fail(&d.id, e.to_string()))?;
        if resp.status().as_u16() == 409 {
            resp = agent
                .post(&format!("{api}/api/v1/devices/{}/secret", d.id))
                .header("Authorization", &auth)
                .send_empty()
                .map_err(|e| fail(&d.id, e.to_string()))?;
        }
        let status = resp.status();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if !status.is_success() {
            return Err(fail(&d.id, format!("HTTP {}: {body}", status.as_u16())));
        }
        let secret = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["secret"].as_str().map(str::to_string))
            .ok_or_else(|| fail(&d.id, format!("no secret in the answer: {body}")))?;
        creds.insert(d.id.clone(), secret);
    }
    Ok(creds)
}
