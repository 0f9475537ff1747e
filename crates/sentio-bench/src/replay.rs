//! `sentio-bench replay`: a rule replayed over stored history (`POST /api/v1/rules/<id>/test`'s
//! work): a fresh store holds `hours` of 1 Hz points for each of `series` devices, sealed into
//! chunks as a node would; the rule `avg("v", "10m") > 50 && v > 40` (`for` 1 min) is then
//! replayed over all of them, reading through `SeriesStore::query`. Prints the wall time of
//! the replay and of its store reads alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use sentio_core::{DeviceId, Point, Rule, RuleId, Selector, Severity, Twin};
use sentio_pipeline::rules::compile;
use sentio_pipeline::rules::replay::{ReplayDevice, replay};
use sentio_store::{Maintenance, RangeQuery, SeriesStore, SqliteStore};

/// Arguments of `sentio-bench replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Numbers of series (one per device) to replay, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    series: Vec<usize>,
    /// Hours of 1 Hz history per series.
    #[arg(long, default_value_t = 24)]
    hours: i64,
}

/// Runs the bench.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let rule = compile(Rule {
        id: RuleId::parse("bench")?,
        name: "bench".into(),
        enabled: true,
        selector: Selector {
            metrics: vec!["v".into()],
            ..Selector::default()
        },
        condition: r#"avg("v", "10m") > 50.0 && v > 40.0"#.into(),
        clear: None,
        for_ms: 60_000,
        clear_for_ms: Rule::DEFAULT_CLEAR_FOR_MS,
        cool_down_ms: Rule::DEFAULT_COOL_DOWN_MS,
        severity: Severity::Warning,
        actions: Vec::new(),
        on_resolve: Vec::new(),
    })?;
    let seconds = args.hours * 3_600;
    let (from, to) = (0, seconds * 1_000);
    for &n in &args.series {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path())?;
        let metric: Arc<str> = Arc::from("v");
        let devices: Vec<ReplayDevice> = (0..n)
            .map(|i| {
                Ok(ReplayDevice {
                    id: DeviceId::parse(&format!("d-{i}"))?,
                    kind: "bench".into(),
                    labels: BTreeMap::new(),
                    twin: Twin::empty(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        for d in &devices {
            let points: Vec<Point> = (0..seconds)
                .map(|s| Point {
                    device: d.id.clone(),
                    metric: metric.clone(),
                    ts_ms: s * 1_000,
                    // A slow wave between 0 and 100: above 50 half of each hour.
                    value: 50.0
                        + 50.0 * ((s % 3_600) as f64 / 3_600.0 * std::f64::consts::TAU).sin(),
                })
                .collect();
            for chunk in points.chunks(20_000) {
                store.append(chunk).await?;
            }
        }
        store.seal_round().await?;
        let unsealed = store.unsealed_points(&devices[0].id, "v", from, to).await?;
        let started = Instant::now();
        for d in &devices {
            let mut at = from;
            loop {
                let page = store
                    .query(RangeQuery {
                        device: d.id.clone(),
                        metric: "v".into(),
                        from_ms: at,
                        to_ms: to,
                        step: None,
                        limit: 50_000,
                    })
                    .await?;
                match page.next {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        let reads = started.elapsed();
        let started = Instant::now();
        let got = replay(&rule, &store, &devices, (from, to), Default::default()).await?;
        let took = started.elapsed();
        let points: u64 = got.iter().map(|r| r.points).sum();
        let fired: usize = got.iter().map(|r| r.episodes.len()).sum();
        println!(
            "replay: {n} series x {} h at 1 Hz ({points} points, {unsealed} of the first series unsealed): {:.3} s (store reads alone {:.3} s), {fired} alerts",
            args.hours,
            took.as_secs_f64(),
            reads.as_secs_f64()
        );
    }
    Ok(())
}
