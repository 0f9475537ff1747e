//! `sentio detect`: the offline face of the live anomaly engine (scores a CSV file).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sentio_ai::DetectorConfig;

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

pub fn run_detect(args: DetectArgs) -> anyhow::Result<()> {
    let config = DetectorConfig::default();
    let report = match &args.output {
        Some(out) => sentio_ai::score_csv_file(&args.input, out, &config)
            .with_context(|| format!("scoring {}", args.input.display()))?,
        None => {
            let text = std::fs::read_to_string(&args.input)
                .with_context(|| format!("reading {}", args.input.display()))?;
            let stdout = std::io::stdout();
            sentio_ai::score_csv(text.as_bytes(), stdout.lock(), &config)
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
