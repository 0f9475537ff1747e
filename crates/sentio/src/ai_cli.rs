//! `sentio detect`: the offline face of the live anomaly engine (scores a CSV file).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sentio_ai::{DetectorConfig, DeviceModelConfig};

/// Arguments of `sentio detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// CSV to score: first column a timestamp, the others numeric metrics of one device.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `timestamp,anomaly_score,alert` (standard output when absent). With
    /// several metric columns the file is one device: `alert` is 1 on every row while the device
    /// model holds an alarm open.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A CSV of normal operation with the same columns, streamed first (the device's earlier
    /// days), so the model starts learnt.
    #[arg(long)]
    pub history: Option<PathBuf>,
}

pub fn run_detect(args: DetectArgs) -> anyhow::Result<()> {
    let config = DetectorConfig::default();
    let device = DeviceModelConfig::default();
    let report = match &args.output {
        Some(out) => sentio_ai::score_csv_file_with(
            args.history.as_deref(),
            &args.input,
            out,
            &config,
            &device,
        )
        .with_context(|| format!("scoring {}", args.input.display()))?,
        None => {
            let text = std::fs::read_to_string(&args.input)
                .with_context(|| format!("reading {}", args.input.display()))?;
            let history = args
                .history
                .as_ref()
                .map(|h| {
                    std::fs::read_to_string(h).with_context(|| format!("reading {}", h.display()))
                })
                .transpose()?;
            let stdout = std::io::stdout();
            sentio_ai::score_csv_with(
                history.as_deref(),
                text.as_bytes(),
                stdout.lock(),
                &config,
                &device,
            )
            .with_context(|| format!("scoring {}", args.input.display()))?
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "scored {} rows of {} metric(s) ({}): {} row(s) alerted{}",
        report.rows,
        report.metrics.len(),
        report.metrics.join(", "),
        report.alert_rows,
        args.output
            .as_ref()
            .map(|o| format!(", written to {}", o.display()))
            .unwrap_or_default()
    );
    Ok(())
}
