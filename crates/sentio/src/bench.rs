//! `sentio bench ...`: a thin pass-through to the `sentio-bench` executable, so the benchmark
//! harness (and its SQLite peer, MQTT and HTTP clients) stays out of the shipped binary while
//! `sentio bench broker` keeps working where both are built.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

/// Everything after `sentio bench`, handed to `sentio-bench` unchanged.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark and its arguments (see `sentio bench --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// `sentio-bench` beside this executable: both are built into the same target directory.
fn bench_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating this executable")?;
    let exe = me.with_file_name(format!("sentio-bench{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!(
            "the benchmarks are a separate executable, not found at {}: build it with `cargo build --release -p sentio-bench` (or run `cargo run --release -p sentio-bench -- ...`)",
            exe.display()
        );
    }
    Ok(exe)
}

/// Runs `sentio-bench ARGS...` and returns with its outcome.
pub fn pass_through(args: BenchArgs) -> anyhow::Result<()> {
    let exe = bench_exe()?;
    let status = std::process::Command::new(&exe)
        .args(&args.args)
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    if !status.success() {
        // sentio-bench printed its own error.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
