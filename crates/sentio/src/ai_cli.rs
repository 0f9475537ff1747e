//! `sentio detect` and `sentio bench nab`: the offline face of the live anomaly engine.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

/// Arguments of `sentio detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// CSV to score: first column a timestamp, the others numeric metrics of one device.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `timestamp,anomaly_score,alert` (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `sentio bench nab`.
#[derive(Debug, Args)]
pub struct NabArgs {
    /// The NAB corpus (data/, labels/, config/).
    #[arg(long, default_value = "../shared/datasets/nab")]
    pub data: PathBuf,
    /// Where to write the results tree.
    #[arg(long, default_value = "results/nab")]
    pub out: PathBuf,
}

pub fn run_detect(_args: DetectArgs) -> anyhow::Result<()> {
    bail!("sentio detect is being built (issue 6)")
}

pub fn run_bench_nab(_args: NabArgs) -> anyhow::Result<()> {
    bail!("sentio bench nab is being built (issue 6)")
}
