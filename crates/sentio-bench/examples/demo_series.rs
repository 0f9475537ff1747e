//! The demo fleet's series through their `SeriesDetector`s alone (as the live series watch runs
//! them: warm-up 40, an alert resolving after 30 normal points), each alert opening classified
//! against the simulator's ground truth. No node, no HTTP: a seed's two hours replay in seconds,
//! so an idea for the series' live alert can be measured before it is built into the engine
//! (`sentio-bench demo` remains the measure of the whole engine).
//!
//! `cargo run --release -p sentio-bench --example demo_series -- SEED END [MINUTES]`
//!
//! `HISTORY=minutes` replays that much of the fleet's history first (as a device's earlier days
//! would be), then counts openings and faults of the last `MINUTES` only. `DUMP=device/metric`
//! also prints every verdict of that series. `GATE=` replays with one of
//! the gates measured in BENCHMARKS.md ("The demo's false alerts: four gates measured on the
//! series detectors alone"), each applied to the live alert only:
//! - `ranges`: a level-only alert (band, level shift, new extreme, drift; not a step of half the
//!   band or a repeat) is not raised when another device of the kind held the reading before
//!   its own first alert on the metric, and some device of the kind held the expected level;
//! - `hull`: the same with the hull of those ranges;
//! - `group`: a level-only alert is not opened while another metric of the device has an alert
//!   open that opened earlier (one incident, one alert);
//! - `fused`: an alert of the fused detector alone (the guard's band not left) naming only a
//!   spike, dip or spike density is not raised;
//! - `incident`: a level-only alert is not opened within 120 s of an alert opening on another
//!   metric of the device (one incident, one alert, its responses settling);
//! - `together`: a level-only alert is not raised within 60 s of a level-only alert verdict in
//!   the same direction on the same metric of another device of the kind (a common cause: a
//!   schedule, the weather).

use std::collections::HashMap;

use sentio_ai::{DetectorConfig, DetectorKind, Score, SeriesDetector};
use sentio_sim::{Fleet, FleetSpec};

/// The gate replayed, if any.
#[derive(Clone, Copy, PartialEq)]
enum Gate {
    None,
    Ranges,
    Hull,
    Group,
    Fused,
    Together,
    Incident,
}

/// A device's readings of one metric before its first alert on it: `(lowest, highest, frozen)`.
type Held = (f64, f64, bool);

/// `(device, metric)`.
type Series = (String, String);

/// One alert opening.
struct Opening {
    series: Series,
    ts: i64,
    score: Score,
}

/// A level-only verdict: the statistics named are all changes of level, the step from the last
/// reading is less than the band's width (the guard's jump is a step of twice the band's
/// half-width in noise spreads) and the reading is not the 5th or later of a run of repeats (a
/// freeze).
fn level_only(s: &Score, prev: f64, run: u32) -> bool {
    use DetectorKind as K;
    let kinds = s.detector.kinds().all(|k| {
        matches!(
            k,
            K::LevelUp
                | K::LevelDown
                | K::NewMax
                | K::NewMin
                | K::Sustained
                | K::DriftUp
                | K::DriftDown
                | K::Season
        )
    });
    let step = (s.observed - prev).abs();
    kinds && step < s.upper - s.lower && run < 5
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = args.first().ok_or("SEED END [MINUTES]")?.parse()?;
    let end = sentio_core::time::parse_time(args.get(1).ok_or("SEED END [MINUTES]")?)?;
    let minutes: i64 = args.get(2).map_or(Ok(120), |a| a.parse())?;
    let dump: Option<Series> = std::env::var("DUMP").ok().and_then(|d| {
        let (a, b) = d.split_once('/')?;
        Some((a.to_string(), b.to_string()))
    });
    let gate = match std::env::var("GATE").ok().as_deref() {
        None | Some("") => Gate::None,
        Some("ranges") => Gate::Ranges,
        Some("hull") => Gate::Hull,
        Some("group") => Gate::Group,
        Some("fused") => Gate::Fused,
        Some("together") => Gate::Together,
        Some("incident") => Gate::Incident,
        Some(other) => return Err(format!("unknown GATE {other:?}").into()),
    };
    let spec = FleetSpec {
        seed,
        ..FleetSpec::demo()
    };
    let start = end - minutes * 60_000;
    let history_min: i64 = std::env::var("HISTORY").map_or(Ok(0), |h| h.parse())?;
    let mut fleet = Fleet::new(spec, start - history_min * 60_000);
    let config = DetectorConfig {
        warmup: 40,
        ..DetectorConfig::default()
    };
    let mut detectors: HashMap<Series, SeriesDetector> = HashMap::new();
    // Open alerts: when each opened, and the normal verdicts since its last alert.
    let mut open: HashMap<Series, (i64, u32)> = HashMap::new();
    let mut openings: Vec<Opening> = Vec::new();
    // When each series' latest alert opened.
    let mut opened: HashMap<Series, i64> = HashMap::new();
    // Per (kind, metric), per device.
    let mut held: HashMap<Series, HashMap<String, Held>> = HashMap::new();
    let mut last: HashMap<Series, f64> = HashMap::new();
    let mut gated = 0u32;
    let mut runs: HashMap<Series, u32> = HashMap::new();
    // The latest level-only alert verdict per (kind, metric, device): when, and whether up.
    let mut moves: HashMap<(String, String, String), (i64, bool)> = HashMap::new();
    let mut ts = start - history_min * 60_000;
    while ts <= end {
        for r in fleet.step(ts) {
            let kind = r.device.split('-').next().unwrap_or_default().to_string();
            for (m, v) in &r.values {
                let key = (r.device.clone(), m.clone());
                let mut s = detectors
                    .entry(key.clone())
                    .or_insert_with(|| SeriesDetector::new(&config))
                    .update(ts, *v);
                let prev = last.insert(key.clone(), *v).unwrap_or(*v);
                let run = {
                    let r = runs.entry(key.clone()).or_insert(0);
                    *r = if *v == prev { *r + 1 } else { 0 };
                    *r
                };
                let kin = held.entry((kind.clone(), m.clone())).or_default();
                let others = || kin.iter().filter(|(d, _)| **d != r.device).map(|(_, h)| *h);
                let in_any = |x: f64| kin.values().any(|&(lo, hi, _)| (lo..=hi).contains(&x));
                let hull = others().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), h| {
                    (a.min(h.0), b.max(h.1))
                });
                let withheld = s.alert
                    && match gate {
                        Gate::None => false,
                        Gate::Ranges => {
                            level_only(&s, prev, run)
                                && others().any(|(lo, hi, _)| (lo..=hi).contains(v))
                                && in_any(s.expected)
                        }
                        Gate::Hull => {
                            level_only(&s, prev, run)
                                && (hull.0..=hull.1).contains(v)
                                && (hull.0..=hull.1).contains(&s.expected)
                        }
                        Gate::Group => {
                            level_only(&s, prev, run)
                                && !open.contains_key(&key)
                                && open
                                    .iter()
                                    .any(|((d, mm), &(t0, _))| *d == r.device && mm != m && t0 < ts)
                        }
                        Gate::Incident => {
                            level_only(&s, prev, run)
                                && !open.contains_key(&key)
                                && opened.iter().any(|((d, mm), &t0)| {
                                    *d == r.device && mm != m && t0 < ts && ts - t0 <= 120_000
                                })
                        }
                        Gate::Together => {
                            level_only(&s, prev, run)
                                && moves.iter().any(|((k, mm, d), &(t0, up))| {
                                    *k == kind
                                        && mm == m
                                        && *d != r.device
                                        && ts - t0 <= 60_000
                                        && up == (*v > s.expected)
                                })
                        }
                        Gate::Fused => {
                            !s.detector.baseline()
                                && s.detector.kinds().all(|k| {
                                    matches!(
                                        k,
                                        DetectorKind::Spike
                                            | DetectorKind::Dip
                                            | DetectorKind::Density
                                    )
                                })
                        }
                    };
                if s.alert && level_only(&s, prev, run) {
                    moves.insert(
                        (kind.clone(), m.clone(), r.device.clone()),
                        (ts, *v > s.expected),
                    );
                }
                if withheld {
                    s.alert = false;
                    gated += 1;
                }
                let h = kin.entry(r.device.clone()).or_insert((*v, *v, false));
                if s.alert {
                    h.2 = true;
                } else if !h.2 {
                    h.0 = h.0.min(*v);
                    h.1 = h.1.max(*v);
                }
                if dump.as_ref() == Some(&key) {
                    println!(
                        "D +{} {:.2} exp {:.2} [{:.2},{:.2}] {:.3} {} {}",
                        (ts - start) / 1000,
                        v,
                        s.expected,
                        s.lower,
                        s.upper,
                        s.score,
                        u8::from(s.alert),
                        s.detector
                    );
                }
                if s.alert {
                    match open.get_mut(&key) {
                        Some(o) => o.1 = 0,
                        None => {
                            open.insert(key.clone(), (ts, 0));
                            opened.insert(key.clone(), ts);
                            if ts >= start {
                                openings.push(Opening {
                                    series: key,
                                    ts,
                                    score: s,
                                });
                            }
                        }
                    }
                } else if let Some(o) = open.get_mut(&key) {
                    o.1 += 1;
                    if o.1 >= 30 {
                        open.remove(&key);
                    }
                }
            }
        }
        ts += 1000;
    }
    let truth: Vec<_> = fleet
        .ground_truth()
        .into_iter()
        .filter(|f| f.start_ms >= start && f.start_ms <= end)
        .collect();
    let mut found = vec![false; truth.len()];
    let mut false_openings = 0;
    for o in &openings {
        let ((device, metric), t, s) = (&o.series, o.ts, &o.score);
        let during = |f: &sentio_sim::Fault| t >= f.start_ms && t <= f.end_ms + 60_000;
        let hit = truth
            .iter()
            .position(|f| f.device == *device && f.metric == *metric && during(f));
        let tag = match hit {
            Some(i) => {
                found[i] = true;
                let f = &truth[i];
                format!("FOUND {:?}+{}", f.kind, (f.start_ms - start) / 1000)
            }
            None if truth.iter().any(|f| f.device == *device && during(f)) => "related".to_string(),
            None => {
                false_openings += 1;
                "FALSE".to_string()
            }
        };
        println!(
            "open {device} {metric} +{} {tag} [{}] v {:.1} exp {:.1} band [{:.1},{:.1}]",
            (t - start) / 1000,
            s.detector,
            s.observed,
            s.expected,
            s.lower,
            s.upper
        );
    }
    for (f, _) in truth.iter().zip(&found).filter(|(_, found)| !**found) {
        println!(
            "missed {} {} {:?} +{}..+{}",
            f.device,
            f.metric,
            f.kind,
            (f.start_ms - start) / 1000,
            (f.end_ms - start) / 1000
        );
    }
    println!(
        "seed {seed}: found {}/{}, false openings {false_openings}, verdicts withheld {gated}",
        found.iter().filter(|&&x| x).count(),
        truth.len()
    );
    Ok(())
}
