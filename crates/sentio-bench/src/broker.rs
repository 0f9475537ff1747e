//! `sentio-bench broker`: Sentio's broker side by side with Debian's mosquitto, in the same run,
//! measured by the external load generator `mqtt-load` (`../shared/tools/mqtt-load`).
//!
//! It builds nothing: it starts the `sentio` executable beside it ([`crate::sentio_exe`]) as a child node (temporary data
//! directory, loopback, free ports) and creates an API token with `mqtt-load/#` rights for the
//! generator, starts `mosquitto -p PORT` (its default configuration, local-only mode) as a
//! second child, then runs each scenario against both, one broker after the other, with
//! `--broker-pid` so that the generator also reads the broker's RSS and CPU time.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `sentio-bench broker`.
#[derive(Debug, Args)]
pub struct BrokerBenchArgs {
    /// Multiplies every message count and the latency run's length (1 = full run, about
    /// 10 minutes; 0.05 = a quick smoke run). The idle-connection count is set by --conns.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Rounds per scenario, alternating which broker goes first; the table shows the median of
    /// each side and the median ratio with its spread (this box's figures move between runs).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Idle connections to open and hold (capped by mqtt-load at its open-file limit).
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// The mqtt-load binary (default: $MQTT_LOAD, then
    /// ../shared/tools/mqtt-load/target/release/mqtt-load, then $CARGO_TARGET_DIR/release/mqtt-load,
    /// then `mqtt-load` on the PATH).
    #[arg(long)]
    pub mqtt_load: Option<PathBuf>,
    /// The mosquitto broker binary (default: /usr/sbin/mosquitto, then `mosquitto` on the PATH).
    #[arg(long)]
    pub mosquitto: Option<PathBuf>,
    /// Also write every raw JSON line of mqtt-load here (one per scenario and broker).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Simulated devices publishing telemetry (`devices/<id>/telemetry`, QoS 1, every
    /// --ingest-interval-ms) into Sentio during a second pass of the throughput and latency
    /// scenarios: the "telemetry ingest on" configuration, where every such message is stored
    /// and scored while mqtt-load runs. 0 skips that pass.
    #[arg(long, default_value_t = 300)]
    pub ingest_devices: usize,
    /// Milliseconds between two readings of one simulated device in the ingest-on pass.
    #[arg(long, default_value_t = 100)]
    pub ingest_interval_ms: u64,
    /// Runs only the scenarios whose name contains this text (repeatable; default: every
    /// one), in both passes: `--only "at 10k"` measures the QoS 1 latency scenario alone, with
    /// telemetry ingest idle and then on.
    #[arg(long)]
    pub only: Vec<String>,
}

/// What a scenario measures, and so which figure the table shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Delivered messages per second.
    Throughput,
    /// p50 and p99 end-to-end latency.
    Latency,
    /// Idle connections held and broker RSS per connection.
    Conns,
}

struct Scenario {
    name: String,
    kind: Kind,
    /// mqtt-load's subcommand and its arguments.
    args: Vec<String>,
}

fn throughput(name: &str, pubs: u32, subs: u32, qos: u8, count: u64, topics: &str) -> Scenario {
    Scenario {
        name: name.into(),
        kind: Kind::Throughput,
        args: [
            "throughput",
            "--pubs",
            &pubs.to_string(),
            "--subs",
            &subs.to_string(),
            "--qos",
            &qos.to_string(),
            "--count",
            &count.to_string(),
            "--topics",
            topics,
            "--name",
            name,
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// The subscribers keep a persistent session (as integrations do): Sentio makes each QoS 1
/// message durable (fsynced) before the publisher's PUBACK; mosquitto keeps it in memory.
fn persistent(mut scenario: Scenario) -> Scenario {
    scenario.args.push("--persistent-subs".into());
    scenario
}

/// The scenarios `only` selects (by a part of their name), every one when it is empty; an
/// error naming them all when it selects none.
fn selected(all: Vec<Scenario>, only: &[String]) -> anyhow::Result<Vec<Scenario>> {
    let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    if chosen.is_empty() {
        bail!(
            "--only {only:?} selects no scenario; they are: {}",
            names.join(", ")
        );
    }
    Ok(chosen)
}

fn scenarios(scale: f64, conns: usize) -> Vec<Scenario> {
    let k = |n: u64| ((n as f64 * scale).round() as u64).max(1);
    let latency_s = ((10.0 * scale.min(1.0)).ceil() as u64).max(1);
    vec![
        throughput("QoS 0 1→1", 1, 1, 0, k(500_000), "shared"),
        throughput("QoS 0 10→1 fan-in", 10, 1, 0, k(50_000), "shared"),
        throughput("QoS 0 1→100 fan-out", 1, 100, 0, k(5_000), "shared"),
        throughput("QoS 0 100→100 pairwise", 100, 100, 0, k(5_000), "pairwise"),
        throughput("QoS 1 1→1", 1, 1, 1, k(200_000), "shared"),
        throughput("QoS 1 10→1 fan-in", 10, 1, 1, k(20_000), "shared"),
        throughput("QoS 1 1→100 fan-out", 1, 100, 1, k(2_000), "shared"),
        throughput("QoS 1 100→100 pairwise", 100, 100, 1, k(2_000), "pairwise"),
        persistent(throughput(
            "QoS 1 1→1 persistent sub",
            1,
            1,
            1,
            k(50_000),
            "shared",
        )),
        persistent(throughput(
            "QoS 1 10→1 persistent sub",
            10,
            1,
            1,
            k(5_000),
            "shared",
        )),
        Scenario {
            name: "QoS 1 at 10k msg/s".into(),
            kind: Kind::Latency,
            args: [
                "latency",
                "--rate",
                "10000",
                "--qos",
                "1",
                "--duration-s",
                &latency_s.to_string(),
            ]
            .map(String::from)
            .to_vec(),
        },
        Scenario {
            name: format!("{conns} idle connections"),
            kind: Kind::Conns,
            args: ["conns", "--n", &conns.to_string(), "--hold-s", "5"]
                .map(String::from)
                .to_vec(),
        },
    ]
}

/// A child process killed when dropped (also on an error path).
pub(crate) struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the child already exited (e.g. its port was taken).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn find_binary(given: Option<&Path>, candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn mqtt_load_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("MQTT_LOAD") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from(
        "../shared/tools/mqtt-load/target/release/mqtt-load",
    ));
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release/mqtt-load"));
    }
    find_binary(given, &candidates, "mqtt-load").context(
        "mqtt-load not found: build it with `cargo build --release --manifest-path \
         ../shared/tools/mqtt-load/Cargo.toml` and/or pass --mqtt-load PATH",
    )
}

fn mosquitto_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    find_binary(given, &[PathBuf::from("/usr/sbin/mosquitto")], "mosquitto").context(
        "mosquitto not found: install it with `bash scripts/services.sh` (Debian package \
         mosquitto) or pass --mosquitto PATH",
    )
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Waits until something accepts TCP connections on `addr`.
fn wait_listening(addr: SocketAddr, child: &mut ChildGuard) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        child.check_alive()?;
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{} is not listening on {addr} after 30 s", child.name)
}

/// The Sentio node under test, with the token the generator connects with.
pub(crate) struct SentioChild {
    pub(crate) guard: ChildGuard,
    pub(crate) mqtt_port: u16,
    pub(crate) http_port: u16,
    pub(crate) admin: String,
    username: String,
    password: String,
}

impl SentioChild {
    /// A counter from the node's `/metrics`.
    fn counter(&self, name: &str) -> anyhow::Result<u64> {
        let text = http_agent()
            .get(&format!("http://127.0.0.1:{}/metrics", self.http_port))
            .header("Authorization", &format!("Bearer {}", self.admin))
            .call()
            .context("reading /metrics")?
            .body_mut()
            .read_to_string()?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .map(|v| v as u64)
            .with_context(|| format!("{name} not in /metrics"))
    }
}

/// The ingest-on pass's telemetry: `sentio sim` as a child, its fleet registered through the
/// node's API, publishing with each device's own credentials.
fn start_sim(
    sentio: &SentioChild,
    args: &BrokerBenchArgs,
    log: &Path,
) -> anyhow::Result<ChildGuard> {
    let exe = crate::sentio_exe()?;
    let n = args.ingest_devices;
    let (rooms, pumps) = (n.div_ceil(3), n / 3);
    let wearables = n - rooms - pumps;
    let log = std::fs::File::create(log)?;
    let child = Command::new(exe)
        .arg("sim")
        .args(["--mqtt", &format!("127.0.0.1:{}", sentio.mqtt_port)])
        .args(["--api", &format!("http://127.0.0.1:{}", sentio.http_port)])
        .args(["--rooms", &rooms.to_string()])
        .args(["--pumps", &pumps.to_string()])
        .args(["--wearables", &wearables.to_string()])
        .args(["--interval-ms", &args.ingest_interval_ms.to_string()])
        .env("SENTIO_ADMIN_TOKEN", &sentio.admin)
        .env("SENTIO_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the simulated fleet")?;
    Ok(ChildGuard {
        name: "the simulated fleet",
        child,
    })
}

fn start_sentio(data: &Path) -> anyhow::Result<SentioChild> {
    start_sentio_with(data, None)
}

/// Starts `sentio serve` on `data` (loopback, free ports, no MQTT TLS); `config`, when given,
/// is written to `<data>/sentio.toml` first, the file the node reads from its data directory.
pub(crate) fn start_sentio_with(data: &Path, config: Option<&str>) -> anyhow::Result<SentioChild> {
    if let Some(text) = config {
        std::fs::create_dir_all(data)?;
        std::fs::write(data.join("sentio.toml"), text)?;
    }
    let exe = crate::sentio_exe()?;
    let (mqtt_port, http_port) = (free_port()?, free_port()?);
    let admin = sentio_store::secret::generate();
    let log = std::fs::File::create(data.with_extension("log"))?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--mqtt", &format!("127.0.0.1:{mqtt_port}")])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .arg("--no-mqtt-tls")
        .env("SENTIO_ADMIN_TOKEN", &admin)
        .env("SENTIO_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the Sentio node")?;
    let mut guard = ChildGuard {
        name: "the Sentio node",
        child,
    };
    wait_listening(([127, 0, 0, 1], http_port).into(), &mut guard)?;
    wait_listening(([127, 0, 0, 1], mqtt_port).into(), &mut guard)?;
    let mut resp = http_agent()
        .post(&format!("http://127.0.0.1:{http_port}/api/v1/tokens"))
        .header("Authorization", &format!("Bearer {admin}"))
        .send_json(json!({"name": "bench", "acl": [{"filter": "mqtt-load/#", "rights": "both"}]}))
        .context("creating the bench token")?;
    let status = resp.status().as_u16();
    let body: Value = resp.body_mut().read_json()?;
    if status != 201 {
        bail!("creating the bench token failed ({status}): {body}");
    }
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    Ok(SentioChild {
        guard,
        mqtt_port,
        http_port,
        admin,
        username: field("username"),
        password: field("password"),
    })
}

fn start_mosquitto(bin: &Path, log: &Path) -> anyhow::Result<(ChildGuard, u16)> {
    let port = free_port()?;
    let log = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut guard = ChildGuard {
        name: "mosquitto",
        child,
    };
    wait_listening(([127, 0, 0, 1], port).into(), &mut guard)?;
    Ok((guard, port))
}

/// One broker as the generator sees it.
struct Target<'a> {
    label: &'a str,
    port: u16,
    pid: u32,
    credentials: Option<(&'a str, &'a str)>,
}

/// Runs one mqtt-load scenario against one broker; returns its JSON line.
fn run_load(bin: &Path, target: &Target<'_>, scenario: &Scenario) -> anyhow::Result<Value> {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &target.port.to_string()])
        .args(["--broker-pid", &target.pid.to_string()])
        .args(["--label", target.label]);
    if let Some((u, p)) = target.credentials {
        cmd.args(["--username", u, "--password", p]);
    }
    let out = cmd
        .args(&scenario.args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "mqtt-load failed on {} against {} ({})",
            scenario.name,
            target.label,
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("mqtt-load printed no JSON for {}", scenario.name))?;
    Ok(serde_json::from_str(line)?)
}

/// One row of the printed table.
struct Row {
    scenario: String,
    figure: &'static str,
    sentio: Option<f64>,
    mosquitto: Option<f64>,
    /// Loss of Sentio and mosquitto, as text.
    loss: String,
    /// Sentio/mosquitto of each round, when there were several.
    ratios: Vec<f64>,
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn loss_text(v: &Value) -> String {
    match (num(v, &["lost"]), num(v, &["loss_pct"])) {
        (Some(lost), Some(pct)) => format!("{lost:.0} ({pct:.1} %)"),
        _ => "?".into(),
    }
}

fn rows_for(scenario: &Scenario, s: &Value, m: &Value) -> Vec<Row> {
    match scenario.kind {
        Kind::Throughput => vec![Row {
            scenario: scenario.name.clone(),
            figure: "delivered msgs/s",
            sentio: num(s, &["recv_msgs_per_s"]),
            mosquitto: num(m, &["recv_msgs_per_s"]),
            loss: format!("{} / {}", loss_text(s), loss_text(m)),
            ratios: Vec::new(),
        }],
        Kind::Latency => {
            let lat = |q: &'static str, figure: &'static str| Row {
                scenario: scenario.name.clone(),
                figure,
                sentio: num(s, &["latency_us", q]),
                mosquitto: num(m, &["latency_us", q]),
                loss: format!("{} / {}", loss_text(s), loss_text(m)),
                ratios: Vec::new(),
            };
            vec![lat("p50", "p50 latency µs"), lat("p99", "p99 latency µs")]
        }
        Kind::Conns => {
            let held = |v: &Value| num(v, &["alive_after_hold"]);
            let failed = |v: &Value| num(v, &["failed"]).unwrap_or(f64::NAN);
            vec![
                Row {
                    scenario: scenario.name.clone(),
                    figure: "connections held",
                    sentio: held(s),
                    mosquitto: held(m),
                    loss: format!("failed {:.0} / {:.0}", failed(s), failed(m)),
                    ratios: Vec::new(),
                },
                Row {
                    scenario: scenario.name.clone(),
                    figure: "broker KiB RSS per conn",
                    sentio: num(s, &["broker_kb_per_conn"]),
                    mosquitto: num(m, &["broker_kb_per_conn"]),
                    loss: String::new(),
                    ratios: Vec::new(),
                },
            ]
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count); `None` when empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One row per figure from several rounds: each side's median, every round's ratio, and the
/// loss of the last round.
fn rows_over_rounds(scenario: &Scenario, rounds: &[(Value, Value)]) -> Vec<Row> {
    let per_round: Vec<Vec<Row>> = rounds
        .iter()
        .map(|(s, m)| rows_for(scenario, s, m))
        .collect();
    let Some(last) = per_round.last() else {
        return Vec::new();
    };
    (0..last.len())
        .map(|i| {
            let side = |f: fn(&Row) -> Option<f64>| {
                median(per_round.iter().filter_map(|rows| f(&rows[i])).collect())
            };
            Row {
                scenario: last[i].scenario.clone(),
                figure: last[i].figure,
                sentio: side(|r| r.sentio),
                mosquitto: side(|r| r.mosquitto),
                loss: last[i].loss.clone(),
                ratios: per_round
                    .iter()
                    .filter_map(|rows| match (rows[i].sentio, rows[i].mosquitto) {
                        (Some(s), Some(m)) if m != 0.0 => Some(s / m),
                        _ => None,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "?".into(),
    }
}

/// The table, in Markdown.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | figure | Sentio | mosquitto | Sentio/mosquitto (median, min–max over rounds) | loss Sentio / mosquitto |\n\
         |---|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        let ratio = if r.ratios.len() > 1 {
            let lo = r.ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mid = median(r.ratios.clone()).unwrap_or(f64::NAN);
            format!("{mid:.2} ({lo:.2}–{hi:.2})")
        } else {
            match (r.sentio, r.mosquitto) {
                (Some(s), Some(m)) if m != 0.0 => format!("{:.2}", s / m),
                _ => "?".into(),
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.figure,
            fmt_num(r.sentio),
            fmt_num(r.mosquitto),
            ratio,
            r.loss
        ));
    }
    out
}

/// Runs the benchmark and prints the table.
pub fn run(args: BrokerBenchArgs) -> anyhow::Result<()> {
    if !(args.scale > 0.0 && args.scale <= 10.0) {
        bail!("--scale must be in (0, 10]");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; build with `cargo build --release -p sentio` for figures worth keeping"
        );
    }
    let load = mqtt_load_binary(args.mqtt_load.as_deref())?;
    let mosquitto_bin = mosquitto_binary(args.mosquitto.as_deref())?;
    let dir = std::env::temp_dir().join(format!(
        "sentio-bench-broker-{}-{}",
        std::process::id(),
        sentio_core::time::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&args, &load, &mosquitto_bin, &dir);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("logs of the brokers are kept in {}", dir.display());
    }
    result
}

fn bench(
    args: &BrokerBenchArgs,
    load: &Path,
    mosquitto_bin: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut sentio = start_sentio(&dir.join("sentio"))?;
    let (mut mosquitto, mosquitto_port) =
        start_mosquitto(mosquitto_bin, &dir.join("mosquitto.log"))?;
    let version = Command::new(mosquitto_bin)
        .arg("-h")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    eprintln!(
        "Sentio {} (pid {}, port {}) vs {version} (pid {}, port {}); mqtt-load {}",
        env!("CARGO_PKG_VERSION"),
        sentio.guard.pid(),
        sentio.mqtt_port,
        mosquitto.pid(),
        mosquitto_port,
        load.display()
    );
    let mut json_out = match &args.json {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut mosquitto_results = Vec::new();
    for scenario in selected(scenarios(args.scale, args.conns), &args.only)? {
        let sentio_target = Target {
            label: "sentio",
            port: sentio.mqtt_port,
            pid: sentio.guard.pid(),
            credentials: Some((&sentio.username, &sentio.password)),
        };
        let mosquitto_target = Target {
            label: "mosquitto",
            port: mosquitto_port,
            pid: mosquitto.pid(),
            credentials: None,
        };
        let mut rounds = Vec::new();
        for round in 0..args.rounds.max(1) {
            sentio.guard.check_alive()?;
            mosquitto.check_alive()?;
            // Alternate which broker goes first, so a drift of the box favours neither.
            let order = if round % 2 == 0 {
                [&sentio_target, &mosquitto_target]
            } else {
                [&mosquitto_target, &sentio_target]
            };
            let mut got = Vec::new();
            for target in order {
                got.push(run_load(load, target, &scenario)?);
                std::thread::sleep(Duration::from_secs(1));
            }
            let (s, m) = if round % 2 == 0 {
                (got.remove(0), got.remove(0))
            } else {
                let m = got.remove(0);
                (got.remove(0), m)
            };
            if let Some(f) = json_out.as_mut() {
                writeln!(f, "{s}")?;
                writeln!(f, "{m}")?;
            }
            rounds.push((s, m));
        }
        rows.extend(print_rows(rows_over_rounds(&scenario, &rounds)));
        let m = rounds.pop().map(|(_, m)| m).unwrap_or_default();
        mosquitto_results.push((scenario, m));
    }
    let ingest = if args.ingest_devices > 0 {
        Some(ingest_on_pass(
            args,
            load,
            &mut sentio,
            dir,
            &mosquitto_results,
            &mut rows,
            json_out.as_mut(),
        )?)
    } else {
        None
    };
    println!("{}", table(&rows));
    println!(
        "(`sentio bench broker --scale {}`, {:.0} s; 100-byte payloads on mqtt-load/# topics. \
         Rows without a suffix: Sentio with telemetry ingest idle. \"ingest on\" rows: the same \
         scenarios again while {} simulated devices publish telemetry every {} ms{}; their ratio \
         is against mosquitto's row above)",
        args.scale,
        started.elapsed().as_secs_f64(),
        args.ingest_devices,
        args.ingest_interval_ms,
        ingest.map_or(String::new(), |i| format!(
            ", {} points stored and {} scored by Sentio in that pass ({:.0} stored/s)",
            i.stored, i.scored, i.stored_per_s
        )),
    );
    Ok(())
}

fn print_rows(rows: Vec<Row>) -> Vec<Row> {
    for r in &rows {
        eprintln!(
            "{:<40} {:<24} sentio {:>10}  mosquitto {:>10}  loss {}",
            r.scenario,
            r.figure,
            fmt_num(r.sentio),
            fmt_num(r.mosquitto),
            r.loss
        );
    }
    rows
}

/// What the node ingested during the ingest-on pass.
struct IngestFigures {
    stored: u64,
    scored: u64,
    stored_per_s: f64,
}

/// Runs the throughput and latency scenarios against Sentio again while a simulated fleet
/// publishes telemetry into it (stored and scored), and adds their rows, "(ingest on)".
fn ingest_on_pass(
    args: &BrokerBenchArgs,
    load: &Path,
    sentio: &mut SentioChild,
    dir: &Path,
    mosquitto_results: &[(Scenario, Value)],
    rows: &mut Vec<Row>,
    mut json_out: Option<&mut std::fs::File>,
) -> anyhow::Result<IngestFigures> {
    let mut sim = start_sim(sentio, args, &dir.join("sim.log"))?;
    // The fleet registers its devices through the API, then connects: wait until its points
    // are being stored.
    let first = sentio.counter("sentio_points_stored_total")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sentio.counter("sentio_points_stored_total")? <= first {
        sim.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "the simulated fleet stored nothing in 60 s (see {})",
                dir.join("sim.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (stored0, scored0) = (
        sentio.counter("sentio_points_stored_total")?,
        sentio.counter("sentio_points_scored_total")?,
    );
    let started = Instant::now();
    for (scenario, m) in mosquitto_results {
        if scenario.kind == Kind::Conns {
            continue;
        }
        sentio.guard.check_alive()?;
        sim.check_alive()?;
        let s = run_load(
            load,
            &Target {
                label: "sentio-ingest-on",
                port: sentio.mqtt_port,
                pid: sentio.guard.pid(),
                credentials: Some((&sentio.username, &sentio.password)),
            },
            scenario,
        )?;
        if let Some(f) = json_out.as_mut() {
            writeln!(f, "{s}")?;
        }
        let mut new = rows_for(scenario, &s, m);
        for r in &mut new {
            r.scenario = format!("{} (ingest on)", r.scenario);
        }
        rows.extend(print_rows(new));
        std::thread::sleep(Duration::from_secs(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = sentio.counter("sentio_points_stored_total")? - stored0;
    let scored = sentio.counter("sentio_points_scored_total")? - scored0;
    drop(sim);
    Ok(IngestFigures {
        stored,
        scored,
        stored_per_s: stored as f64 / elapsed.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_read_mqtt_load_lines() {
        let s = json!({"recv_msgs_per_s": 150000.0, "lost": 0, "loss_pct": 0.0,
                       "latency_us": {"p50": 300, "p99": 700}});
        let m = json!({"recv_msgs_per_s": 100000.0, "lost": 895, "loss_pct": 89.5,
                       "latency_us": {"p50": 330, "p99": 790}});
        let all = scenarios(1.0, 10_000);
        let rows = rows_for(&all[0], &s, &m);
        let t = table(&rows);
        assert!(t.contains("| QoS 0 1→1 | delivered msgs/s | 150000 | 100000 | 1.50 | 0 (0.0 %) / 895 (89.5 %) |"), "{t}");
        let lat = all.iter().find(|s| s.kind == Kind::Latency).unwrap();
        let rows = rows_for(lat, &s, &m);
        assert_eq!(rows[1].sentio, Some(700.0));
        assert_eq!(rows[1].mosquitto, Some(790.0));
        // A missing figure shows as "?" and no ratio is invented.
        let t = table(&rows_for(&all[0], &json!({}), &m));
        assert!(t.contains("| ? | 100000 | ? |"), "{t}");
    }

    #[test]
    fn rounds_give_each_side_s_median_and_the_ratio_s_spread() {
        let all = scenarios(1.0, 10_000);
        let round = |s: f64, m: f64| {
            (
                json!({"recv_msgs_per_s": s, "lost": 0, "loss_pct": 0.0}),
                json!({"recv_msgs_per_s": m, "lost": 0, "loss_pct": 0.0}),
            )
        };
        let rows = rows_over_rounds(
            &all[0],
            &[round(100.0, 100.0), round(300.0, 100.0), round(200.0, 50.0)],
        );
        assert_eq!(rows[0].sentio, Some(200.0));
        assert_eq!(rows[0].mosquitto, Some(100.0));
        let t = table(&rows);
        assert!(t.contains("| 200 | 100 | 3.00 (1.00–4.00) |"), "{t}");
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn only_selects_scenarios_by_a_part_of_their_name() {
        let all = || scenarios(0.1, 100);
        let latency = selected(all(), &["at 10k".to_string()]).unwrap();
        assert_eq!(latency.len(), 1);
        assert_eq!(latency[0].kind, Kind::Latency);
        let two = selected(all(), &["QoS 0 10→1".to_string(), "idle".to_string()]).unwrap();
        assert_eq!(two.len(), 2);
        // A part of a name: "QoS 0 1→1" is also the start of "QoS 0 1→100 fan-out".
        let prefix = selected(all(), &["QoS 0 1→1".to_string()]).unwrap();
        assert_eq!(prefix.len(), 2);
        assert_eq!(selected(all(), &[]).unwrap().len(), all().len());
        let none = selected(all(), &["QoS 3".to_string()]).err().unwrap();
        assert!(none.to_string().contains("QoS 0 1→1"), "{none}");
    }

    #[test]
    fn scale_shortens_counts_but_never_to_zero() {
        let full = scenarios(1.0, 10_000);
        let tiny = scenarios(0.000_001, 100);
        assert_eq!(full.len(), tiny.len());
        assert!(full[0].args.contains(&"500000".to_string()));
        assert!(tiny[0].args.contains(&"1".to_string()));
        assert!(tiny.last().unwrap().args.contains(&"100".to_string()));
    }
}
