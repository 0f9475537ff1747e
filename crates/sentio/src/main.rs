//! The `sentio` binary: command line, logging, signals. The only place (with `node`) that uses
//! `anyhow`.

mod ai_cli;
mod bench;
mod sim_cli;
mod user_cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sentio::config::{ByteSize, CONFIG_FILE, Config, LimitSetting, Span, SpanOrNone};
use sentio::node::Node;
use sentio::token::TokenSource;
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
    /// Benchmarks: runs the `sentio-bench` executable built beside this one with the same
    /// arguments (`sentio bench --help` lists them; build it with `cargo build --release -p
    /// sentio-bench`).
    #[command(disable_help_flag = true)]
    Bench(bench::BenchArgs),
    /// Write a consistent backup of a data directory to one file, while its node runs.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory.
    Restore(RestoreArgs),
    /// Check or print the configuration (sentio.toml, environment, flags).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage user accounts in a data directory (`sentio user add NAME --role admin`).
    #[command(subcommand)]
    User(user_cli::UserCommand),
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

/// `sentio serve` (and `sentio config check|print`): where the configuration file is, and the
/// flags that override its keys (each flag names its key). Precedence: flag, then environment
/// variable, then the file, then the default.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration file [default: <data>/sentio.toml, when it exists].
    #[arg(long, env = "SENTIO_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: database, broker state, the generated admin token (key `data`,
    /// default `data`).
    #[arg(long, env = "SENTIO_DATA")]
    data: Option<PathBuf>,
    /// MQTT listen address, TCP (key `mqtt.listen`, default 0.0.0.0:1883).
    #[arg(long, env = "SENTIO_MQTT")]
    mqtt: Option<SocketAddr>,
    /// HTTP listen address: REST API, WebSocket stream and dashboard (key `http.listen`,
    /// default 0.0.0.0:8080).
    #[arg(long, env = "SENTIO_HTTP")]
    http: Option<SocketAddr>,
    /// Admin token for the API, at least 32 characters (key `http.admin_token`). Visible to
    /// every user of this machine in `ps`: prefer --admin-token-file or SENTIO_ADMIN_TOKEN. When
    /// absent everywhere, a random one is generated on first start into <data>/admin.token
    /// (mode 0600).
    #[arg(long, env = "SENTIO_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin token, at least 32 characters (key `http.admin_token_file`):
    /// the token then appears on no command line.
    #[arg(
        long,
        env = "SENTIO_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "admin_token"
    )]
    admin_token_file: Option<PathBuf>,
    /// Also serve the API and dashboard over HTTPS on this address, with the MQTT over TLS
    /// certificate (keys `http.tls.enabled = true` and `http.tls.listen`, e.g. 0.0.0.0:8443).
    #[arg(long, env = "SENTIO_HTTPS", value_name = "ADDR")]
    https: Option<SocketAddr>,
    /// Also run the simulated demo fleet (4 rooms, 3 pumps, 3 wearables) against the embedded
    /// broker; it injects faults, ground truth in <data>/demo-ground-truth.jsonl (key
    /// `demo.enabled`). It declares `pump.bearing_temp<=90` unless `ai.limits` declares it.
    #[arg(long)]
    demo: bool,
    /// Seed of the demo fleet (key `demo.seed`, default 42).
    #[arg(long)]
    demo_seed: Option<u64>,
    /// Largest MQTT packet accepted, in bytes (key `mqtt.max_packet_size`).
    #[arg(long)]
    max_packet_size: Option<usize>,
    /// A limit declared for a metric of every device of a kind: `KIND.METRIC<=MAX`,
    /// `KIND.METRIC>=MIN` or both joined by `,`, optionally `@HORIZON` (default 1h), e.g.
    /// `pump.bearing_temp<=90@2h`. Repeat for more; replaces the key `ai.limits`.
    #[arg(long = "limit", value_name = "KIND.METRIC<=MAX")]
    limits: Vec<LimitSetting>,
    /// MQTT over TLS listen address (key `mqtt.tls.listen`, default 0.0.0.0:8883).
    #[arg(long, env = "SENTIO_MQTT_TLS")]
    mqtt_tls: Option<SocketAddr>,
    /// Do not listen for MQTT over TLS (key `mqtt.tls.enabled = false`).
    #[arg(long)]
    no_mqtt_tls: bool,
    /// PEM certificate chain for MQTT over TLS, with --tls-key (key `mqtt.tls.cert`). Without
    /// it, a self-signed certificate is generated into <data>/tls/ on first start.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (key `mqtt.tls.key`).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: PEM CA certificate(s) whose client certificates (CN = a registered device
    /// id) authenticate devices without a password (key `mqtt.tls.client_ca`).
    #[arg(long, value_name = "FILE", conflicts_with = "no_mqtt_tls")]
    tls_client_ca: Option<PathBuf>,
    /// Admit MQTT clients that send no username, confined to public/# (key
    /// `mqtt.allow_anonymous`).
    #[arg(long)]
    allow_anonymous: bool,
    /// The late-point window, e.g. `1h`, `7d`, or `none` (key `pipeline.late_window`, default
    /// 7d): older telemetry is refused with a reason recorded on the device.
    #[arg(long, env = "SENTIO_LATE_WINDOW")]
    late_window: Option<String>,
    /// Keep raw points this long, e.g. `7d`, at least `1h` (key `store.retention.raw`).
    #[arg(long)]
    retention_raw: Option<String>,
    /// Keep 1-minute rollups this long (key `store.retention.rollup_1m`).
    #[arg(long)]
    retention_1m: Option<String>,
    /// Keep 1-hour rollups this long (key `store.retention.rollup_1h`).
    #[arg(long)]
    retention_1h: Option<String>,
    /// Disk budget of the data directory, e.g. `10GB`, `2GiB` (key `store.disk_budget`).
    #[arg(long)]
    disk_budget: Option<String>,
    /// Most simultaneous MQTT connections, 0 = unlimited (key `mqtt.max_connections`).
    #[arg(long, env = "SENTIO_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most subscriptions per MQTT client, 0 = unlimited (key `mqtt.limits.max_subscriptions`).
    #[arg(long, env = "SENTIO_MAX_SUBSCRIPTIONS")]
    max_subscriptions: Option<usize>,
    /// Most PUBLISHes per second per MQTT client, 0 = unlimited; beyond it the client is
    /// slowed, nothing refused (key `mqtt.limits.max_publish_rate`).
    #[arg(long, env = "SENTIO_MAX_PUBLISH_RATE")]
    max_publish_rate: Option<u32>,
    /// Most messages queued for one MQTT session; beyond it the oldest is dropped and counted.
    /// Without it nothing is dropped: publishers wait (key `mqtt.limits.max_queued_messages`).
    #[arg(long, env = "SENTIO_MAX_QUEUED_MESSAGES")]
    max_queued_messages: Option<usize>,
    /// Longest MQTT keep-alive a client may use, in seconds: one asking for more or for 0 is
    /// held to it (MQTT 5 told via Server Keep Alive) (key `mqtt.limits.max_keep_alive`).
    #[arg(long, env = "SENTIO_MAX_KEEP_ALIVE")]
    max_keep_alive: Option<u16>,
    /// Run as an edge of the cloud Sentio whose broker is at `mqtts://HOST:PORT` (MQTT over
    /// TLS) or `mqtt://HOST:PORT`, or over WebSocket `wss://HOST:443/mqtt` (TLS) or
    /// `ws://HOST:PORT/mqtt` at its HTTP server: everything
    /// runs here as usual, and every point committed here is forwarded to the cloud, kept
    /// until it acknowledges (key `edge.upstream`).
    #[arg(long, env = "SENTIO_UPSTREAM", value_name = "URL")]
    upstream: Option<String>,
    /// With an mqtts:// or wss:// upstream: a PEM file with the cloud's CA or its own certificate (for a
    /// self-signed cloud its `tls/mqtt-cert.pem`), the only ones trusted; without it the
    /// public CAs (key `edge.ca_file`).
    #[arg(long, env = "SENTIO_UPSTREAM_CA", value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// This edge's id, registered in the cloud with POST /api/v1/edges (key `edge.edge_id`).
    #[arg(long, env = "SENTIO_EDGE_ID", value_name = "ID")]
    edge_id: Option<String>,
    /// A file holding the secret the cloud gave this edge (key `edge.secret_file`; or the
    /// environment variable SENTIO_UPSTREAM_SECRET, key `edge.secret`).
    #[arg(long, env = "SENTIO_UPSTREAM_SECRET_FILE", value_name = "FILE")]
    upstream_secret_file: Option<PathBuf>,
    /// What an edge sends up: `raw` (every point) or `aggregates` (each closed minute's
    /// rollup per series, plus the raw points around each alert) (key `edge.policy`).
    #[arg(long, env = "SENTIO_UPLINK_POLICY", value_name = "raw|aggregates")]
    uplink_policy: Option<UplinkPolicyArg>,
}

/// `--uplink-policy`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UplinkPolicyArg {
    Raw,
    Aggregates,
}

/// `sentio config ...`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Read the configuration (file, environment, flags) and say whether it is valid.
    Check(Box<ServeArgs>),
    /// Print the effective configuration as TOML (file, environment and flags applied,
    /// defaults filled in, secrets redacted).
    Print(Box<ServeArgs>),
}

/// The configuration file to read: `--config`, else `<data>/sentio.toml` when it exists.
fn config_file(args: &ServeArgs) -> Option<PathBuf> {
    if let Some(path) = &args.config {
        return Some(path.clone());
    }
    let data = args.data.clone().unwrap_or_else(|| Config::default().data);
    Some(data.join(CONFIG_FILE)).filter(|p| p.is_file())
}

/// The effective configuration: defaults, then the file, then environment and flags; checked.
fn load_config(args: &ServeArgs) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let file = config_file(args);
    let mut c = match &file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let flag = |key: &str, e: String| anyhow::anyhow!("{key}: {e}");
    let a = args;
    if let Some(v) = &a.data {
        c.data = v.clone();
    }
    if let Some(v) = a.mqtt {
        c.mqtt.listen = v;
    }
    if let Some(v) = a.http {
        c.http.listen = v;
    }
    if let Some(v) = &a.admin_token {
        c.http.admin_token = Some(v.clone());
        c.http.admin_token_file = None;
    }
    if let Some(v) = &a.admin_token_file {
        c.http.admin_token_file = Some(v.clone());
        c.http.admin_token = None;
    }
    if let Some(v) = a.https {
        c.http.tls.enabled = true;
        c.http.tls.listen = v;
    }
    if a.demo {
        c.demo.enabled = true;
    }
    if let Some(v) = a.demo_seed {
        c.demo.seed = v;
    }
    if let Some(v) = a.max_packet_size {
        c.mqtt.max_packet_size = v;
    }
    if !a.limits.is_empty() {
        c.ai.limits = a.limits.clone();
    }
    if let Some(v) = a.mqtt_tls {
        c.mqtt.tls.listen = v;
    }
    if a.no_mqtt_tls {
        c.mqtt.tls.enabled = false;
    }
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        c.mqtt.tls.cert = Some(cert.clone());
        c.mqtt.tls.key = Some(key.clone());
    }
    if let Some(v) = &a.tls_client_ca {
        c.mqtt.tls.client_ca = Some(v.clone());
    }
    if a.allow_anonymous {
        c.mqtt.allow_anonymous = true;
    }
    if let Some(v) = &a.late_window {
        c.pipeline.late_window =
            SpanOrNone::try_from(v.clone()).map_err(|e| flag("--late-window", e))?;
    }
    let span = |key, v: &Option<String>| -> anyhow::Result<Option<Span>> {
        v.clone()
            .map(|s| Span::try_from(s).map_err(|e| flag(key, e)))
            .transpose()
    };
    let r = &mut c.store.retention;
    r.raw = span("--retention-raw", &a.retention_raw)?.or(r.raw);
    r.rollup_1m = span("--retention-1m", &a.retention_1m)?.or(r.rollup_1m);
    r.rollup_1h = span("--retention-1h", &a.retention_1h)?.or(r.rollup_1h);
    if let Some(v) = &a.disk_budget {
        c.store.disk_budget = Some(
            v.parse::<ByteSize>()
                .map_err(|e| flag("--disk-budget", e))?,
        );
    }
    if let Some(v) = a.max_connections {
        c.mqtt.max_connections = v;
    }
    let l = &mut c.mqtt.limits;
    l.max_subscriptions = a.max_subscriptions.unwrap_or(l.max_subscriptions);
    l.max_publish_rate = a.max_publish_rate.unwrap_or(l.max_publish_rate);
    l.max_queued_messages = a.max_queued_messages.or(l.max_queued_messages);
    l.max_keep_alive = a.max_keep_alive.or(l.max_keep_alive);
    if let Some(v) = &a.upstream {
        c.edge.upstream = Some(v.clone());
    }
    if let Some(v) = &a.upstream_ca {
        c.edge.ca_file = Some(v.clone());
    }
    if let Some(v) = a.uplink_policy {
        c.edge.policy = match v {
            UplinkPolicyArg::Raw => sentio_store::UplinkPolicy::Raw,
            UplinkPolicyArg::Aggregates => sentio_store::UplinkPolicy::Aggregates,
        };
    }
    if let Some(v) = &a.edge_id {
        c.edge.edge_id = Some(v.clone());
    }
    // The secret from the environment only (never a flag: `ps` would show it).
    if let Ok(v) = std::env::var("SENTIO_UPSTREAM_SECRET") {
        c.edge.secret = Some(v);
        c.edge.secret_file = None;
    }
    if let Some(v) = &a.upstream_secret_file {
        c.edge.secret_file = Some(v.clone());
        c.edge.secret = None;
    }
    c.tls_follows_plain_listeners();
    c.check()?;
    Ok((c, file))
}

/// `sentio config check|print`.
fn config_command(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check(args) => {
            let (_, file) = load_config(&args)?;
            match file {
                Some(path) => println!("{}: the configuration is valid", path.display()),
                None => println!(
                    "no configuration file (looked for --config, then <data>/{CONFIG_FILE}): the defaults, environment and flags are valid"
                ),
            }
        }
        ConfigCommand::Print(args) => {
            let (config, file) = load_config(&args)?;
            if let Some(path) = file {
                println!("# read from {}", path.display());
            }
            print!("{}", config.to_redacted_toml());
        }
    }
    Ok(())
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
    let (config, file) = load_config(&args)?;
    if let Some(path) = &file {
        info!(config = %path.display(), "configuration read");
    }
    let node = Node::start(config).await?;
    let token_note = match &node.token_source {
        TokenSource::File(p) => format!("admin token in {}", p.display()),
        TokenSource::Configured => "admin token as configured".to_string(),
    };
    info!(mqtt = %node.mqtt_addr, http = %node.http_addr, "Sentio is running");
    if let Some((addr, fingerprint)) = &node.mqtt_tls {
        info!(mqtt_tls = %addr, sha256 = %fingerprint, "MQTT over TLS");
    }
    let (scheme, addr) = match &node.https {
        Some((addr, _)) => ("https", *addr),
        None => ("http", node.http_addr),
    };
    let (host, port) = match addr.ip().is_unspecified() {
        true => ("127.0.0.1".to_string(), addr.port()),
        false => (addr.ip().to_string(), addr.port()),
    };
    info!(
        "dashboard: {scheme}://{host}:{port}/  (sign in as a user: sentio user add; {token_note}; API: {scheme}://{host}:{port}/api/v1/devices)"
    );
    shutdown_signal().await;
    info!("shutting down: draining accepted data into the store");
    node.shutdown().await;
    info!("stopped");
    Ok(())
}

/// jemalloc as Rust's allocator: a 10,000-device node held less resident with it than with
/// glibc's malloc, whose freed memory stayed resident (BENCHMARKS.md). Prefixed, so C code
/// (SQLite, and an LD_PRELOADed library such as libfaketime, which deadlocked at start when
/// jemalloc replaced `malloc` itself) keeps glibc's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
            // A backup holds every secret: readable by this user only.
            sentio::private::restrict_new_files();
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
            sentio::private::restrict_new_files();
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
        Command::Bench(args) => bench::pass_through(args),
        Command::User(command) => user_cli::run(command),
        Command::Config(command) => config_command(command),
        Command::Serve(args) => {
            init_logging();
            node_runtime()?.block_on(serve(*args))
        }
        Command::Sim(args) => {
            init_logging();
            tokio::runtime::Runtime::new()?.block_on(sim_cli::run(args, shutdown_signal()))
        }
    }
}

/// The node's runtime: as tokio's default, with its threads named apart, so a profile tells the
/// broker's workers (`sentio-worker-<n>`) from the blocking pool (`sentio-blocking`), where the
/// store's SQLite calls made from the runtime run.
fn node_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // As tokio: `TOKIO_WORKER_THREADS`, else one worker per core.
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let spawned = AtomicUsize::new(0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        // The runtime starts its workers first, on threads of its blocking pool, when it is
        // built: the first `workers` threads named are the workers.
        .thread_name_fn(move || match spawned.fetch_add(1, Ordering::Relaxed) {
            n if n < workers => format!("sentio-worker-{n}"),
            _ => "sentio-blocking".to_string(),
        })
        .build()
}
