//! Sentio's benchmark harness, kept out of the shipped `sentio` binary: everything here drives a
//! real node (in-process through [`sentio::node::Node`], or the `sentio` executable as a child)
//! and measures it, often beside a peer in the same run (mosquitto, one SQLite row per point).
//!
//! - [`nab`]: the anomaly engine over the Numenta Anomaly Benchmark.
//! - [`demo_eval`]: the demo fleet's injected faults against the alerts a node raised.
//! - [`energy`]: the demo fleet's energy with its rules off and on.
//! - [`store`]: the embedded store against one SQLite row per point.
//! - [`broker`]: the broker against mosquitto, measured by `mqtt-load`.
//! - [`tep`]: the device model over the Tennessee Eastman process.
//! - [`upkeep`]: the store's background work as the fleet grows, idle and at 1 Hz.
//! - [`ingest`]: MQTT publishers → broker → store + detectors → queryable.
//! - [`fleet`]: a `sentio serve` holding 1 k, 3 k, 10 k connected devices: CPU and RSS, idle and at 1 Hz.
//! - [`replay`]: a rule replayed over stored history.
//! - [`rules`]: many rules on every committed point.

pub mod broker;
pub mod demo_eval;
pub mod energy;
pub mod fleet;
pub mod ingest;
pub mod nab;
pub mod replay;
pub mod rules;
pub mod store;
pub mod tep;
pub mod upkeep;

use std::path::PathBuf;

use anyhow::Context;

/// The `sentio` executable the benches start as a child: `$SENTIO_BIN`, else the `sentio`
/// beside this executable (both are built into the same target directory).
pub fn sentio_exe() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SENTIO_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("locating this executable")?;
    let beside = me.with_file_name(format!("sentio{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        beside.is_file(),
        "no sentio executable at {} (build it with `cargo build --release -p sentio`, or set SENTIO_BIN)",
        beside.display()
    );
    Ok(beside)
}
