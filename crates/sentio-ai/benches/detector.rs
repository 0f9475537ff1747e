//! Per-point cost of the live detector, and its memory per series.
//!
//! `cargo bench -p sentio-ai --bench detector`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sentio_ai::{DetectorConfig, SeriesDetector};

/// A 1 Hz sensor: daily wave, noise from a xorshift generator, an occasional spike.
fn series(n: usize) -> Vec<(i64, f64)> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let t = i as f64;
            let spike = if i % 5000 == 4999 { 8.0 } else { 0.0 };
            (
                1_700_000_000_000 + i as i64 * 1000,
                20.0 + 2.0 * (t * std::f64::consts::TAU / 86_400.0).sin() + noise + spike,
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = DetectorConfig::default();
    let points = series(200_000);
    // Warm a detector so the measured points run the full (post warm-up) path.
    let mut warm = SeriesDetector::new(&config);
    for &(t, v) in &points[..100_000] {
        warm.update(t, v);
    }
    let json = serde_json::to_vec(&warm).expect("serializable");
    eprintln!(
        "memory per series: {} B in memory (size_of {} + heap), {} B serialized as JSON",
        warm.memory_bytes(),
        std::mem::size_of::<SeriesDetector>(),
        json.len()
    );
    let tail = &points[100_000..];
    let mut group = c.benchmark_group("detector");
    group.throughput(Throughput::Elements(tail.len() as u64));
    group.bench_function("update (100k points, warm)", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |d| {
                for &(t, v) in tail {
                    black_box(d.update(t, v));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
