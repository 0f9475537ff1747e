//! `sentio sim`: a simulated fleet against any MQTT broker.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use sentio_sim::{FleetSpec, SimConfig};
use serde_json::{Value, json};
use tracing::info;

/// Arguments of `sentio sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// MQTT broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt: String,
    /// A Sentio API base URL (e.g. http://127.0.0.1:8080): registers the fleet's devices there
    /// (or rotates their secrets) and connects with those credentials. Without it, devices
    /// connect with username = device id and no password (for brokers without authentication).
    #[arg(long)]
    pub api: Option<String>,
    /// Admin token for --api (default: the contents of data/admin.token).
    #[arg(long, env = "SENTIO_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seed: the same seed gives the same fleet, values and faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rooms in the smart building.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Pumps in the factory.
    #[arg(long, default_value_t = 3)]
    pub pumps: usize,
    /// Wearables.
    #[arg(long, default_value_t = 3)]
    pub wearables: usize,
    /// Milliseconds between two readings of a device.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// MQTT QoS of telemetry (0, 1 or 2).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Write the injected faults (device, metric, start, end, kind) here as JSON lines.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
}

pub async fn run(
    args: SimArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (host, port) = args
        .mqtt
        .rsplit_once(':')
        .context("--mqtt must be host:port")?;
    let port: u16 = port.parse().context("--mqtt port must be a number")?;
    let spec = FleetSpec {
        seed: args.seed,
        rooms: args.rooms,
        pumps: args.pumps,
        wearables: args.wearables,
    };
    let mut config = SimConfig::new(host, port, spec);
    config.interval = Duration::from_millis(args.interval_ms.max(1));
    config.qos = args.qos;
    config.ground_truth = args.ground_truth;
    config.duration = args.duration_s.map(Duration::from_secs);
    if let Some(api) = &args.api {
        let token = match args.token {
            Some(t) => t,
            None => std::fs::read_to_string("data/admin.token")
                .map(|t| t.trim().to_string())
                .context("--api needs --token (or data/admin.token)")?,
        };
        let api = api.trim_end_matches('/').to_string();
        let devices = spec.devices();
        let creds = tokio::task::spawn_blocking(move || register(&api, &token, &devices)).await??;
        config.credentials = creds;
    }
    info!(devices = spec.devices().len(), broker = %args.mqtt, "simulated fleet starting");
    let report = sentio_sim::run(config, shutdown).await?;
    info!(?report, "simulated fleet stopped");
    Ok(())
}

/// Registers each device through the API (or rotates its secret if it exists).
fn register(
    api: &str,
    token: &str,
    devices: &[sentio_sim::SimDevice],
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let mut creds = std::collections::HashMap::new();
    for d in devices {
        let mut resp = agent
            .post(&format!("{api}/api/v1/devices"))
            .header("Authorization", &auth)
            .send_json(json!({"id": d.id, "name": d.name, "kind": d.kind, "labels": d.labels}))
            .with_context(|| format!("registering {} at {api}", d.id))?;
        let status = resp.status().as_u16();
        if status == 409 {
            let mut resp = agent
                .post(&format!("{api}/api/v1/devices/{}/secret", d.id))
                .header("Authorization", &auth)
                .send_empty()?;
            if !resp.status().is_success() {
                bail!(
                    "{} exists and its secret could not be rotated: {}",
                    d.id,
                    resp.body_mut().read_to_string()?
                );
            }
            let body: Value = resp.body_mut().read_json()?;
            creds.insert(
                d.id.clone(),
                body["secret"].as_str().unwrap_or_default().to_string(),
            );
            continue;
        }
        let body: Value = resp.body_mut().read_json()?;
        if status != 201 {
            bail!("registering {} failed ({status}): {body}", d.id);
        }
        creds.insert(
            d.id.clone(),
            body["secret"].as_str().unwrap_or_default().to_string(),
        );
    }
    Ok(creds)
}
