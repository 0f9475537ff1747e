//! Per-row cost of the device model for a 50-metric device, and its saved state.
//!
//! `cargo bench -p sentio-ai --bench device_model`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sentio_ai::{DeviceModel, DeviceModelConfig};

const METRICS: usize = 50;

/// Rows of 50 metrics driven by 3 common factors plus noise (xorshift).
fn rows(n: usize) -> Vec<Vec<f64>> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    (0..n)
        .map(|t| {
            let f = [(t as f64 / 17.0).sin(), (t as f64 / 5.0).cos(), noise()];
            (0..METRICS)
                .map(|i| 10.0 * i as f64 + f[i % 3] * (1 + i % 4) as f64 + 0.3 * noise())
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = DeviceModelConfig::default();
    let names: Vec<String> = (0..METRICS).map(|i| format!("m{i:02}")).collect();
    let data = rows(20_000);
    let mut model = DeviceModel::new();
    for (t, r) in data[..1_000].iter().enumerate() {
        model.update_row(
            &cfg,
            t as i64 * 1_000,
            names.iter().map(String::as_str).zip(r.iter().copied()),
        );
    }
    let json = serde_json::to_vec(&model).expect("serializable");
    eprintln!(
        "device model, {METRICS} metrics: {} B saved (JSON), {} regime(s)",
        json.len(),
        model.regimes()
    );
    let mut g = c.benchmark_group("device_model");
    g.throughput(Throughput::Elements(1));
    g.bench_function("row_50_metrics", |b| {
        let mut m = model.clone();
        let mut t = 1_000usize;
        b.iter(|| {
            let r = &data[t % data.len()];
            t += 1;
            black_box(m.update_row(
                &cfg,
                t as i64 * 1_000,
                names.iter().map(String::as_str).zip(r.iter().copied()),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
