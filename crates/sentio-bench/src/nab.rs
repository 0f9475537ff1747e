//! `sentio-bench nab`: the live anomaly engine over the Numenta Anomaly Benchmark, scored with
//! NAB's own scorer's rules (`../shared/tools/nab_score.py` scores the same results tree).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sentio_ai::NabOptions;

/// Arguments of `sentio-bench nab`.
#[derive(Debug, Args)]
pub struct NabArgs {
    /// The NAB corpus (data/, labels/, config/).
    #[arg(long, default_value = "../shared/datasets/nab")]
    pub data: PathBuf,
    /// Where to write the results tree.
    #[arg(long, default_value = "results/nab")]
    pub out: PathBuf,
}

/// Runs NAB and prints the three normalised scores, time per point and memory per series.
pub fn run(args: NabArgs) -> anyhow::Result<()> {
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
