//! `sentio detect` and `sentio bench nab`: the offline face of the live anomaly engine.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sentio_ai::{DetectorConfig, NabOptions};

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

pub fn run_bench_nab(args: NabArgs) -> anyhow::Result<()> {
    let opts = NabOptions::new(&args.data, &args.out);
    let r = sentio_ai::run_nab(&opts)
        .with_context(|| format!("running NAB on {}", args.data.display()))?;
    let scores = args.out.join("nab_scores.json");
    std::fs::write(&scores, &r.scorer_json)
        .with_context(|| format!("writing {}", scores.display()))?;
    println!(
        "NAB normalised scores ({} files, {} points):",
        r.files, r.points
    );
    println!("  standard            {:6.2}", r.standard);
    println!("  reward_low_FP_rate  {:6.2}", r.reward_low_fp);
    println!("  reward_low_FN_rate  {:6.2}", r.reward_low_fn);
    println!("time per point        {:6.0} ns", r.ns_per_point);
    println!(
        "memory per series     {} B in memory (size_of + heap), {} B serialized (JSON)",
        r.max_memory_bytes, r.max_serialized_bytes
    );
    println!(
        "results in {}, scorer report {}",
        args.out.display(),
        scores.display()
    );
    Ok(())
}
