//! Prints the live detector's verdicts on one simulated demo series, with the injected faults:
//! `cargo run --release -p sentio --example score_sim -- pump-1 bearing_temp [warmup]`
//! (`SECS=7200` for two hours; the history ends now). A tool for tuning the live alert.

use sentio_ai::{DetectorConfig, SeriesDetector};
use sentio_sim::{Fleet, FleetSpec};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dev, metric) = (args[1].clone(), args[2].clone());
    let warmup: u32 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(40);
    let secs0: i64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let start = sentio_core::time::now_ms() - secs0 * 1000;
    let mut fleet = Fleet::new(FleetSpec::demo(), start);
    let cfg = DetectorConfig {
        warmup,
        ..DetectorConfig::default()
    };
    let mut d = SeriesDetector::new(&cfg);
    let secs: i64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    for i in 0..secs {
        let ts = start + i * 1000;
        for r in fleet.step(ts) {
            if r.device != dev {
                continue;
            }
            let v = r.get(&metric).unwrap();
            let s = d.update(ts, v);
            if i % 10 == 0 || s.alert {
                println!(
                    "+{i:4}s v={v:8.2} exp={:8.2} [{:8.2},{:8.2}] score={:.3} alert={} {}",
                    s.expected, s.lower, s.upper, s.score, s.alert, s.detector
                );
            }
        }
    }
    for f in fleet
        .ground_truth()
        .iter()
        .filter(|f| f.device == dev && f.metric == metric && f.start_ms < start + 1_200_000)
    {
        println!(
            "fault {:?} +{}..+{}",
            f.kind,
            (f.start_ms - start) / 1000,
            (f.end_ms - start) / 1000
        );
    }
}
