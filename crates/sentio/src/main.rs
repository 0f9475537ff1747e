//! The `sentio` binary: command line, wiring, signals. The only place that uses `anyhow`.

mod ai_cli;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sentio", version, about = "Sentio: an AIoT platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a CSV file with the live anomaly engine.
    Detect(ai_cli::DetectArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Run the anomaly engine over the Numenta Anomaly Benchmark and score it.
    Nab(ai_cli::NabArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Detect(args) => ai_cli::run_detect(args),
        Command::Bench(BenchCommand::Nab(args)) => ai_cli::run_bench_nab(args),
    }
}
