//! Prints the detector's verdict on every point of one `timestamp,value` CSV, for tuning.
//! `cargo run --release -p sentio-ai --example trace -- FILE [FROM] [TO]`

use sentio_ai::{DetectorConfig, SeriesDetector, parse_timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = std::fs::read_to_string(&args[0])?;
    let from: usize = args.get(1).map_or(Ok(0), |a| a.parse())?;
    let to: usize = args.get(2).map_or(Ok(usize::MAX), |a| a.parse())?;
    let mut config = DetectorConfig::default();
    if let Ok(json) = std::env::var("SENTIO_AI_CONFIG") {
        config = serde_json::from_str(&json)?;
    }
    let mut d = SeriesDetector::new(&config);
    for (i, line) in text.lines().skip(1).enumerate() {
        let mut it = line.split(',');
        let (Some(ts), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let Some(ts) = parse_timestamp(ts) else {
            continue;
        };
        let s = d.update(ts, v.trim().parse()?);
        if (from..to).contains(&i) {
            println!(
                "{i} {:.3} exp {:.3} [{:.3},{:.3}] score {:.3} {} {} | {}",
                s.observed,
                s.expected,
                s.lower,
                s.upper,
                s.score,
                u8::from(s.alert),
                s.detector,
                d.debug_state()
            );
        }
    }
    Ok(())
}
