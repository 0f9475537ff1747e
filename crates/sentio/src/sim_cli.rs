//! `sentio sim`: a simulated fleet against any MQTT broker.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sentio_sim::{FleetSpec, SimConfig, TickShape};
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
    /// How a tick's readings leave: `spread` (each device at its own phase over the interval,
    /// as real devices) or `burst` (the whole fleet at once at every tick).
    #[arg(long, env = "SENTIO_SIM_TICK", default_value = "spread", value_parser = ["spread", "burst"])]
    pub tick: String,
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
    config.tick_shape = if args.tick == "burst" {
        TickShape::Burst
    } else {
        TickShape::Spread
    };
    if let Some(api) = &args.api {
        let token = match args.token {
            Some(t) => t,
            None => std::fs::read_to_string("data/admin.token")
                .map(|t| t.trim().to_string())
                .context("--api needs --token (or data/admin.token)")?,
        };
        let (api, devices) = (api.clone(), spec.devices());
        let creds = tokio::task::spawn_blocking(move || {
            sentio_sim::register_via_api(&api, &token, &devices)
        })
        .await??;
        config.credentials = creds;
    }
    info!(devices = spec.devices().len(), broker = %args.mqtt, "simulated fleet starting");
    let report = sentio_sim::run(config, shutdown).await?;
    info!(?report, "simulated fleet stopped");
    Ok(())
}
