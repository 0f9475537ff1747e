//! `sentio-bench`: the benchmark harness's command line (see the crate docs). `sentio bench ...`
//! passes its arguments through to this executable when it is built beside `sentio`.

use clap::{Parser, Subcommand};
use sentio_bench::{
    broker, demo_eval, energy, fleet, ingest, nab, replay, rules, store, tep, upkeep,
};

#[derive(Debug, Parser)]
#[command(
    name = "sentio-bench",
    version,
    about = "Sentio's benchmarks: the anomaly engine, the demo fleet, the store, the broker beside mosquitto, end-to-end ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the anomaly engine over the Numenta Anomaly Benchmark and score it.
    Nab(nab::NabArgs),
    /// Stream each Tennessee Eastman file through the device model and score it (detection
    /// rate, false alarm rate, first alert delay per fault and pooled).
    Tep(tep::TepArgs),
    /// Replay simulated demo-fleet history through a node and score its alerts against the
    /// simulator's ground truth (faults found / injected, false alerts per hour).
    Demo(demo_eval::DemoArgs),
    /// The demo fleet over simulated hours with its rules off, then on (the live node's rule
    /// state machine): energy per kind and in total, the saving, and the comfort cost.
    Energy(energy::EnergyArgs),
    /// The embedded store (head + compressed chunks) against one SQLite row per point: ingest,
    /// bytes per point, a month drawn at 1,000 points, reopen.
    Store(store::StoreArgs),
    /// Sentio's MQTT broker side by side with mosquitto (same run, same load generator):
    /// throughput, fan-in/fan-out, latency at 10k msg/s, idle connections.
    Broker(broker::BrokerBenchArgs),
    /// The whole pipeline: many MQTT publishers (registered devices, QoS 1) -> embedded broker
    /// -> store + detectors -> queryable: sustained points/s, publish -> queryable p50/p99.
    Ingest(ingest::IngestArgs),
    /// A `sentio serve` holding a growing fleet (1 k, 3 k, 10 k devices of 5 metrics, one MQTT
    /// connection each): the node's CPU and RSS idle, at 1 Hz, and after.
    Fleet(fleet::FleetArgs),
    /// The store's background work (sealing, rollups, retention) as the fleet grows: CPU and
    /// the longest 5-second round, idle and with every series at 1 Hz.
    Upkeep(upkeep::UpkeepArgs),
    /// A rule replayed over stored history (`POST /api/v1/rules/<id>/test`): 24 h of 1 Hz per
    /// series, for 1 and 100 series.
    Replay(replay::ReplayArgs),
    /// Many rules on every committed point: time per point (p50, p99) and memory per rule
    /// through the detect stage's rules watch.
    Rules(rules::RulesArgs),
    /// (internal) The child of `store`'s restart row: writes points into the head, says so,
    /// and waits to be killed.
    #[command(hide = true)]
    StoreChild(store::ChildArgs),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = || tokio::runtime::Runtime::new();
    match cli.command {
        Command::Nab(args) => nab::run(args),
        Command::Tep(args) => tep::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Energy(args) => energy::run(args),
        Command::Demo(args) => runtime()?.block_on(demo_eval::run_cli(args)),
        Command::Store(args) => runtime()?.block_on(store::run(args)),
        Command::Ingest(args) => runtime()?.block_on(ingest::run(args)),
        Command::Fleet(args) => runtime()?.block_on(fleet::run(args)),
        Command::Upkeep(args) => runtime()?.block_on(upkeep::run(args)),
        Command::Replay(args) => runtime()?.block_on(replay::run(args)),
        Command::Rules(args) => rules::run(args),
        Command::StoreChild(args) => runtime()?.block_on(store::child(args)),
    }
}
