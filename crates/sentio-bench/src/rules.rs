//! `sentio-bench rules`: the cost of many rules per committed point (issue 17's target: 1,000
//! rules loaded, about 10 matching each point: p50 ≤ 2 µs and p99 ≤ 20 µs per point, ≤ 50 KB per
//! rule). Rule `r` selects device `r % devices` (so `rules / devices` rules match each of its
//! points; the detect stage's rule index finds them without looking at the others), reads `temp`, and
//! is one of four shapes: a threshold with a `for`, a 5-minute average, a threshold with a
//! 1-minute max and a `clear`, a rate-like count. The points are a random walk that crosses
//! the thresholds now and then, so alerts open and resolve. Each point is its own batch (the
//! worst case: a device posting one reading) and is timed alone through the detect stage's
//! own `RulesWatch` ([`RulesProbe`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use sentio_core::{DeviceId, Point, Rule, RuleId, Selector, Severity};
use sentio_pipeline::RulesProbe;

/// Arguments of `sentio-bench rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Rules loaded.
    #[arg(long, default_value_t = 1_000)]
    rules: usize,
    /// Devices; rule `r` selects device `r % devices`.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Points per device (one per simulated second).
    #[arg(long, default_value_t = 1_200)]
    points: usize,
}

/// Rule `r` of the set, on device `d`.
fn rule(r: usize, d: &DeviceId) -> anyhow::Result<Rule> {
    let t = 70.0 + (r % 7) as f64;
    let (condition, clear, for_ms) = match r % 4 {
        0 => (format!("temp > {t:.1}"), None, 60_000),
        1 => (format!(r#"avg("temp", "5m") > {t:.1}"#), None, 0),
        2 => (
            format!(r#"temp > {t:.1} && max("temp", "1m") > {:.1}"#, t + 2.0),
            Some(format!("temp < {:.1}", t - 5.0)),
            0,
        ),
        _ => (
            format!(r#"count("temp", "1m") > 50 && temp > {t:.1}"#),
            None,
            10_000,
        ),
    };
    Ok(Rule {
        id: RuleId::parse(&format!("r-{r}"))?,
        name: format!("rule {r}"),
        enabled: true,
        selector: Selector {
            devices: vec![d.clone()],
            metrics: vec!["temp".into()],
            ..Selector::default()
        },
        condition,
        clear,
        for_ms,
        clear_for_ms: Rule::DEFAULT_CLEAR_FOR_MS,
        cool_down_ms: Rule::DEFAULT_COOL_DOWN_MS,
        severity: Severity::Warning,
        actions: Vec::new(),
        on_resolve: Vec::new(),
    })
}

/// This process's resident memory (bytes), from `/proc/self/statm`.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4_096)
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64
}

/// Runs the bench and prints its figures.
pub fn run(args: RulesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.devices > 0, "--devices must be at least 1");
    let devices: Vec<DeviceId> = (0..args.devices)
        .map(|i| DeviceId::parse(&format!("dev-{i}")))
        .collect::<Result<_, _>>()?;
    let rss_before = rss_bytes();
    let rules = (0..args.rules)
        .map(|r| rule(r, &devices[r % args.devices]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut probe = RulesProbe::new(rules)?;
    let kind: Arc<str> = Arc::from("machine");
    let labels = BTreeMap::new();
    let metric: Arc<str> = Arc::from("temp");
    let mut walk: Vec<f64> = vec![65.0; args.devices];
    // A small xorshift: the same points on every run.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let start_ms = 1_767_225_600_000_i64;
    let mut ns: Vec<u64> = Vec::with_capacity(args.points * args.devices);
    let mut verdicts = 0usize;
    let wall = Instant::now();
    for step in 0..args.points {
        let ts_ms = start_ms + step as i64 * 1_000;
        for (d, device) in devices.iter().enumerate() {
            walk[d] = (walk[d] + (next() - 0.5) * 2.0 + (65.0 - walk[d]) * 0.01).clamp(40.0, 95.0);
            let point = [Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms,
                value: walk[d],
            }];
            let t = Instant::now();
            verdicts += probe.observe(device, &kind, &labels, &point, ts_ms);
            ns.push(t.elapsed().as_nanos() as u64);
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let saved = probe.saved_bytes();
    ns.sort_unstable();
    let per_point = args.rules as f64 / args.devices as f64;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64;
    println!(
        "{} rules, {} devices ({per_point:.0} rules matching each point), {} points, {verdicts} verdicts, {wall_s:.2} s",
        args.rules,
        args.devices,
        ns.len()
    );
    println!(
        "per point: p50 {:.2} µs, p99 {:.2} µs, mean {:.2} µs, max {:.1} µs (target p50 ≤ 2, p99 ≤ 20)",
        quantile(&ns, 0.5) / 1e3,
        quantile(&ns, 0.99) / 1e3,
        mean / 1e3,
        quantile(&ns, 1.0) / 1e3
    );
    let per_rule = 1e3 * per_point.max(1.0);
    println!(
        "per rule judged: p50 {:.2} µs, p99 {:.2} µs, mean {:.2} µs",
        quantile(&ns, 0.5) / per_rule,
        quantile(&ns, 0.99) / per_rule,
        mean / per_rule
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "memory: {:.1} KB resident per rule (rules, states and windows; target ≤ 50 KB), saved state {:.1} KB per rule",
            b.saturating_sub(a) as f64 / 1024.0 / args.rules.max(1) as f64,
            saved as f64 / 1024.0 / args.rules.max(1) as f64
        );
    }
    Ok(())
}
