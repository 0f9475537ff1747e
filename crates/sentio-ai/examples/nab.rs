//! Runs the live detector over the NAB corpus and prints the three normalised scores.
//!
//! `cargo run --release -p sentio-ai --example nab -- [CORPUS] [OUT]`
//! (defaults `../shared/datasets/nab` and `/tmp/sentio-nab`). The environment variable
//! `SENTIO_AI_CONFIG` may hold a JSON object overriding `DetectorConfig` fields, for
//! experiments; the reported figures use the defaults.

use sentio_ai::{DetectorConfig, NabOptions, run_nab};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let corpus = args
        .next()
        .unwrap_or_else(|| "../shared/datasets/nab".into());
    let out = args.next().unwrap_or_else(|| "/tmp/sentio-nab".into());
    let mut opts = NabOptions::new(corpus, &out);
    if let Ok(json) = std::env::var("SENTIO_AI_CONFIG") {
        opts.config = serde_json::from_str::<DetectorConfig>(&json)?;
    }
    let r = run_nab(&opts)?;
    std::fs::write(format!("{out}/scores.json"), &r.scorer_json)?;
    println!(
        "NAB standard {:.2}  reward_low_FP {:.2}  reward_low_FN {:.2}  | {} files, {} points, {:.0} ns/point, memory/series {} B (serialized {} B)",
        r.standard,
        r.reward_low_fp,
        r.reward_low_fn,
        r.files,
        r.points,
        r.ns_per_point,
        r.max_memory_bytes,
        r.max_serialized_bytes
    );
    Ok(())
}
