//! The `sentio` binary: command line, logging, signals. The only place (with `node`) that uses
//! `anyhow`.

mod ai_cli;
mod bench_ingest;
mod bench_store;
mod broker_bench;
mod sim_cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sentio::node::{Node, NodeConfig};
use sentio::token::TokenSource;
use sentio_pipeline::DeclaredLimit;
use sentio_sim::FleetSpec;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "sentio",
    version,
    about = "Sentio: an AIoT platform in one binary (MQTT broker, time-series store, anomaly detection, API, dashboard)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: embedded MQTT broker, store, anomaly detection, HTTP API and dashboard.
    Serve(Box<ServeArgs>),
    /// Run a simulated fleet (building, factory, wearables) against an MQTT broker.
    Sim(sim_cli::SimArgs),
    /// Score a CSV file with the live anomaly engine.
    Detect(ai_cli::DetectArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write a consistent backup of a data directory to one file, while its node runs.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The data directory to back up.
    #[arg(long, default_value = "data", env = "SENTIO_DATA")]
    data: PathBuf,
    /// The backup file to write (must not exist).
    #[arg(long)]
    to: PathBuf,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// The data directory to restore into (must hold no database yet).
    #[arg(long, default_value = "data", env = "SENTIO_DATA")]
    data: PathBuf,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Run the anomaly engine over the Numenta Anomaly Benchmark and score it.
    Nab(ai_cli::NabArgs),
    /// Replay simulated demo-fleet history through a node and score its alerts against the
    /// simulator's ground truth (faults found / injected, false alerts per hour).
    Demo(DemoArgs),
    /// The embedded store (head + compressed chunks) against one SQLite row per point: ingest,
    /// bytes per point, a month drawn at 1,000 points, reopen.
    Store(bench_store::StoreArgs),
    /// Sentio's MQTT broker side by side with mosquitto (same run, same load generator):
    /// throughput, fan-in/fan-out, latency at 10k msg/s, idle connections.
    Broker(broker_bench::BrokerBenchArgs),
    /// The whole pipeline: many MQTT publishers (registered devices, QoS 1) -> embedded broker
    /// -> store + detectors -> queryable: sustained points/s, publish -> queryable p50/p99.
    Ingest(bench_ingest::IngestArgs),
    /// (internal) The child of `bench store`'s restart row: writes points into the head, says
    /// so, and waits to be killed.
    #[command(hide = true)]
    StoreChild(bench_store::ChildArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Simulated minutes of history.
    #[arg(long, default_value_t = 120)]
    minutes: u64,
    /// Fleet seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// End of the simulated history (ms or RFC 3339; default: now). The fleet follows the time
    /// of day, so a fixed end gives a reproducible run.
    #[arg(long)]
    end: Option<String>,
}

async fn bench_demo(args: DemoArgs) -> anyhow::Result<()> {
    let spec = FleetSpec {
        seed: args.seed,
        ..FleetSpec::demo()
    };
    let end = match &args.end {
        Some(e) => Some(sentio_core::time::parse_time(e)?),
        None => None,
    };
    let r = sentio::demo_eval::run(spec, args.minutes, end).await?;
    let mut delays = r.delays_s.clone();
    delays.sort_by(f64::total_cmp);
    let median = delays.get(delays.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "demo fleet: {} devices, {:.1} simulated hours, {} points ingested over HTTP at {:.0} points/s",
        spec.devices().len(),
        r.hours,
        r.points,
        r.points_per_s
    );
    println!(
        "faults found: {}/{} ({:.0} %), median delay {:.0} s",
        r.found,
        r.injected,
        100.0 * r.found as f64 / r.injected.max(1) as f64,
        median
    );
    println!(
        "false alerts: {} ({:.1} per hour for the fleet); alerts on another metric of a faulty device: {}",
        r.false_alerts,
        r.false_alerts as f64 / r.hours,
        r.related
    );
    let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("alerts by kind: {}", kinds.join(", "));
    for p in &r.predictions {
        let at = |t: Option<i64>| {
            t.map_or("never".to_string(), |t| {
                format!("+{} s", (t - r.start_ms) / 1000)
            })
        };
        println!(
            "  time-to-threshold: {} {} fault +{}..+{} s: predicted {} (forecast crossing {}), limit crossed {}{}",
            p.fault.device,
            p.fault.metric,
            (p.fault.start_ms - r.start_ms) / 1000,
            (p.fault.end_ms - r.start_ms) / 1000,
            at(p.predicted_ms),
            at(p.forecast_crossing_ms),
            at(p.crossed_ms),
            p.lead_s()
                .map_or(String::new(), |l| format!(", {l:.0} s ahead")),
        );
    }
    for f in &r.missed {
        println!(
            "  missed: {} {} {:?} at +{} s for {} s",
            f.device,
            f.metric,
            f.kind,
            (f.start_ms - r.start_ms) / 1000,
            (f.end_ms - f.start_ms) / 1000
        );
    }
    for (d, m, k, t) in &r.false_list {
        println!(
            "  false alert: {d} {m} ({k}) at +{} s",
            (t - r.start_ms) / 1000
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data directory: database, broker state and the generated admin token live here.
    #[arg(long, default_value = "data", env = "SENTIO_DATA")]
    data: PathBuf,
    /// MQTT listen address (TCP).
    #[arg(long, default_value = "0.0.0.0:1883", env = "SENTIO_MQTT")]
    mqtt: SocketAddr,
    /// HTTP listen address: REST API, WebSocket stream and dashboard.
    #[arg(long, default_value = "0.0.0.0:8080", env = "SENTIO_HTTP")]
    http: SocketAddr,
    /// Admin token for the API (at least 16 characters). When absent, a random one is generated
    /// on first start and written to <data>/admin.token (mode 0600).
    #[arg(long, env = "SENTIO_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Also run a simulated demo fleet (4 rooms, 3 pumps, 3 wearables) that connects to the
    /// embedded broker over MQTT and injects faults; ground truth goes to
    /// <data>/demo-ground-truth.jsonl.
    #[arg(long)]
    demo: bool,
    /// Seed of the demo fleet.
    #[arg(long, default_value_t = 42)]
    demo_seed: u64,
    /// Largest MQTT packet accepted, in bytes.
    #[arg(long, default_value_t = sentio_broker::DEFAULT_MAX_PACKET)]
    max_packet_size: usize,
    /// A limit declared for a metric of every device of a kind: `KIND.METRIC<=MAX`,
    /// `KIND.METRIC>=MIN` or both joined by `,`, optionally `@HORIZON` (default 1h), e.g.
    /// `pump.bearing_temp<=90@2h`. A reading beyond it raises a limit alert; a forecast that
    /// reaches it within the horizon raises a predictive alert first. Repeat for more limits.
    /// `--demo` declares `pump.bearing_temp<=90` unless given here.
    #[arg(long = "limit", value_name = "KIND.METRIC<=MAX", value_parser = parse_limit)]
    limits: Vec<DeclaredLimit>,
    /// MQTT over TLS listen address.
    #[arg(long, default_value = sentio_broker::DEFAULT_TLS_LISTEN, env = "SENTIO_MQTT_TLS")]
    mqtt_tls: SocketAddr,
    /// Do not listen for MQTT over TLS.
    #[arg(long)]
    no_mqtt_tls: bool,
    /// PEM certificate chain for MQTT over TLS (with --tls-key). Without it, a self-signed
    /// certificate is generated into <data>/tls/ on first start; its SHA-256 fingerprint is logged.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: PEM CA certificate(s). On the MQTT over TLS listener, a client certificate
    /// signed by this CA whose CN is a registered device id authenticates as that device
    /// without a password (its ACL stays devices/<id>/...); a certificate from another CA fails
    /// the handshake. Clients without a certificate still use their password.
    #[arg(long, value_name = "FILE", conflicts_with = "no_mqtt_tls")]
    tls_client_ca: Option<PathBuf>,
    /// Admit MQTT clients that send no username (off by default). They may publish and
    /// subscribe only under public/#; a warning is logged at start.
    #[arg(long)]
    allow_anonymous: bool,
    /// The late-point window: telemetry stamped further back than this (e.g. `1h`, `7d`) is
    /// refused with a reason recorded on the device; within it, late and out-of-order points are
    /// stored and merged, also into already compressed chunks. `none` accepts any past time.
    #[arg(long, default_value = "7d", value_parser = parse_late_window, env = "SENTIO_LATE_WINDOW")]
    late_window: LateWindow,
    /// Keep raw points this long (e.g. `7d`, `36h`) for every device without a per-kind or
    /// per-device setting (PUT /api/v1/retention); replaces the stored setting. Default 7d.
    #[arg(long, value_parser = parse_duration)]
    retention_raw: Option<i64>,
    /// Keep 1-minute rollups this long (default 90d); replaces the stored setting.
    #[arg(long, value_parser = parse_duration)]
    retention_1m: Option<i64>,
    /// Keep 1-hour rollups this long (default 730d); replaces the stored setting.
    #[arg(long, value_parser = parse_duration)]
    retention_1h: Option<i64>,
    /// Disk budget of the data directory, e.g. `10GB`, `500MB`, `2GiB`: over 95 % of it the
    /// oldest raw points are removed (rollups stay) until under 90 %. Default: none (a disk
    /// that fills up anyway gets a clean refusal of new data, HTTP 507).
    #[arg(long, value_parser = parse_bytes)]
    disk_budget: Option<u64>,
    /// Most simultaneous MQTT connections on this node (0 = unlimited); a CONNECT beyond it
    /// gets CONNACK 0x97 "quota exceeded" (MQTT 3.1.1: 0x03 "server unavailable").
    #[arg(long, default_value_t = sentio_broker::DEFAULT_MAX_CONNECTIONS, env = "SENTIO_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Most subscriptions per MQTT client (0 = unlimited); a filter beyond it gets SUBACK 0x97
    /// "quota exceeded" (MQTT 3.1.1: 0x80 "failure").
    #[arg(long, default_value_t = sentio_broker::DEFAULT_MAX_SUBSCRIPTIONS, env = "SENTIO_MAX_SUBSCRIPTIONS")]
    max_subscriptions: usize,
    /// Most PUBLISHes per second per MQTT client (0 = unlimited). A token bucket of one
    /// second's worth: beyond it the broker stops reading that client's socket until its next
    /// token, so a flooding client is slowed down and nothing is refused or lost.
    #[arg(long, default_value_t = 0, env = "SENTIO_MAX_PUBLISH_RATE")]
    max_publish_rate: u32,
    /// Most messages queued for one offline or slow MQTT session. Beyond it the oldest is
    /// dropped and counted (per session in /api/v1/broker/clients, in /metrics as
    /// sentio_mqtt_dropped_total{reason="queue_full"}, and in the log). Without it nothing is
    /// dropped: publishers to a session whose queue holds 10,000 messages wait (their PUBACK is
    /// withheld) until it drains.
    #[arg(long, env = "SENTIO_MAX_QUEUED_MESSAGES", value_parser = parse_queue_bound)]
    max_queued_messages: Option<usize>,
    /// Longest MQTT keep-alive a client may use, in seconds (1-65535; default: the client's
    /// own, even 0 = never). An MQTT 5 client asking for more, or for 0, is told this value
    /// (Server Keep Alive in its CONNACK) and disconnected after 1.5 times it in silence; an
    /// MQTT 3.1.1 client asking for more, or for 0, is refused with CONNACK 0x02, as with
    /// mosquitto's max_keepalive.
    #[arg(long, env = "SENTIO_MAX_KEEP_ALIVE", value_parser = clap::value_parser!(u16).range(1..))]
    max_keep_alive: Option<u16>,
}

/// `--late-window`: a duration, or `none`.
#[derive(Debug, Clone, Copy)]
struct LateWindow(Option<i64>);

fn parse_late_window(s: &str) -> Result<LateWindow, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(LateWindow(None));
    }
    sentio_core::time::parse_duration_ms(s)
        .map(|ms| LateWindow(Some(ms)))
        .map_err(|e| format!("{e} (a duration such as 1h or 7d, or `none`)"))
}

fn parse_duration(s: &str) -> Result<i64, String> {
    sentio_core::time::parse_duration_ms(s).map_err(|e| e.to_string())
}

/// `123`, `10GB`, `500MB`, `64KB` (powers of 1000) or `2GiB`, `8MiB`, `64KiB` (powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 10GB or 512MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{s:?}: must be a positive size"))
}

fn parse_queue_bound(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a bound of 0 would drop every queued message; leave the flag out for no drops (back-pressure)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

fn parse_limit(s: &str) -> Result<DeclaredLimit, String> {
    DeclaredLimit::parse(s)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENTIO_LOG")
        // mqtt5 warns once per message dropped from a full session queue; Sentio counts those
        // drops and warns at most every 10 s per session (`sentio_broker` limits) instead.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "info,mqtt5=warn,mqtt5::broker::storage::client_queue=error",
            )
        });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(&args.data);
    config.mqtt = args.mqtt;
    config.http = args.http;
    config.admin_token = args.admin_token;
    config.max_packet_size = args.max_packet_size;
    config.pipeline.limits = args.limits;
    config.mqtt_tls = (!args.no_mqtt_tls).then_some(args.mqtt_tls);
    config.tls_cert_key = args.tls_cert.zip(args.tls_key);
    config.tls_client_ca = args.tls_client_ca;
    config.allow_anonymous = args.allow_anonymous;
    config.pipeline.max_late_ms = args.late_window.0;
    config.retention_raw = args.retention_raw;
    config.retention_rollups = (args.retention_1m, args.retention_1h);
    config.disk_budget = args.disk_budget;
    config.max_connections = args.max_connections;
    config.broker_limits = sentio_broker::Limits {
        max_subscriptions: args.max_subscriptions,
        max_publish_rate: args.max_publish_rate,
        max_queued_messages: args.max_queued_messages,
        max_keep_alive: args.max_keep_alive,
        ..sentio_broker::Limits::default()
    };
    if args.demo {
        sentio::node::add_limits(&mut config.pipeline.limits, sentio::node::demo_limits());
        config.demo = Some(FleetSpec {
            seed: args.demo_seed,
            ..FleetSpec::demo()
        });
    }
    let node = Node::start(config).await?;
    let host = if node.http_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        node.http_addr.ip().to_string()
    };
    let token_note = match &node.token_source {
        TokenSource::File(p) => format!("admin token in {}", p.display()),
        TokenSource::Configured => "admin token as configured".to_string(),
    };
    info!(mqtt = %node.mqtt_addr, http = %node.http_addr, "Sentio is running");
    if let Some((addr, fingerprint)) = &node.mqtt_tls {
        info!(mqtt_tls = %addr, sha256 = %fingerprint, "MQTT over TLS");
    }
    info!(
        "dashboard: http://{host}:{}/  ({token_note}; API: http://{host}:{}/api/v1/devices)",
        node.http_addr.port(),
        node.http_addr.port()
    );
    shutdown_signal().await;
    info!("shutting down: draining accepted data into the store");
    node.shutdown().await;
    info!("stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), not a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(args) => ai_cli::run_detect(args),
        Command::Backup(args) => {
            let r = sentio_store::backup(&args.data, &args.to)?;
            println!(
                "backup of {} written to {}: database {:.1} MiB, {} other files ({:.1} MiB)",
                args.data.display(),
                args.to.display(),
                mib(r.database_bytes),
                r.files,
                mib(r.file_bytes)
            );
            Ok(())
        }
        Command::Restore(args) => {
            let r = sentio_store::restore(&args.from, &args.data)?;
            println!(
                "restored {} into {}: database {:.1} MiB, {} other files; start it with `sentio serve --data {}`",
                args.from.display(),
                args.data.display(),
                mib(r.database_bytes),
                r.files,
                args.data.display()
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Nab(args)) => ai_cli::run_bench_nab(args),
        Command::Bench(BenchCommand::Broker(args)) => broker_bench::run(args),
        Command::Bench(BenchCommand::Demo(args)) => {
            tokio::runtime::Runtime::new()?.block_on(bench_demo(args))
        }
        Command::Bench(BenchCommand::Store(args)) => {
            tokio::runtime::Runtime::new()?.block_on(bench_store::run(args))
        }
        Command::Bench(BenchCommand::Ingest(args)) => {
            tokio::runtime::Runtime::new()?.block_on(bench_ingest::run(args))
        }
        Command::Bench(BenchCommand::StoreChild(args)) => {
            tokio::runtime::Runtime::new()?.block_on(bench_store::child(args))
        }
        Command::Serve(args) => {
            init_logging();
            tokio::runtime::Runtime::new()?.block_on(serve(*args))
        }
        Command::Sim(args) => {
            init_logging();
            tokio::runtime::Runtime::new()?.block_on(sim_cli::run(args, shutdown_signal()))
        }
    }
}
