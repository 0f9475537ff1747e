//! MASE of the forecaster against seasonal naive on a few NAB series (rolling origin, one day
//! ahead). `cargo run --release -p sentio-ai --example forecast_eval -- [CORPUS]`

use std::path::Path;

use sentio_ai::offline::{evaluate_forecast, read_series};

const SERIES: &[&str] = &[
    "artificialNoAnomaly/art_daily_small_noise.csv",
    "realKnownCause/nyc_taxi.csv",
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realTweets/Twitter_volume_AAPL.csv",
    "realTraffic/speed_6005.csv",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/datasets/nab".into());
    println!(
        "{:<55} {:>6} {:>8} {:>14} {:>9}",
        "series", "step", "MASE", "MASE s-naive", "cover95"
    );
    let (mut a, mut b) = (0.0, 0.0);
    for s in SERIES {
        let series = read_series(&Path::new(&corpus).join("data").join(s))?;
        let start = std::time::Instant::now();
        let e = evaluate_forecast(&series, 5)?;
        println!(
            "{:<55} {:>5}m {:>8.3} {:>14.3} {:>8.1}%  ({} origins, {:.1} s)",
            s,
            e.step_ms / 60_000,
            e.mase,
            e.mase_seasonal_naive,
            100.0 * e.coverage,
            e.origins,
            start.elapsed().as_secs_f64()
        );
        a += e.mase;
        b += e.mase_seasonal_naive;
    }
    println!(
        "mean MASE: forecaster {:.3}, seasonal naive {:.3}",
        a / SERIES.len() as f64,
        b / SERIES.len() as f64
    );
    Ok(())
}
