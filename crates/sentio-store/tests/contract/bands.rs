//! The AI engine's expected band per series and minute: saved in parts and merged, read back
//! downsampled, kept across a reopen, expired with the 1-minute rollups, erased with the device.

use sentio_core::{Point, SeriesKey};
use sentio_store::{BandRow, NewDevice, RetentionPolicy, Stores};

use super::retention::{DAY, MIN, T0, maintain_all};
use super::{Backend, dev};

const DAYS: i64 = 5;

fn series(device: &str) -> SeriesKey {
    SeriesKey::new(dev(device), "t".into())
}

/// One scored point's band at `ts_ms`: expected 10, range 10 ± `half`.
fn band(ts_ms: i64, half: f64) -> BandRow {
    BandRow::scored(ts_ms, 10.0, 10.0 - half, 10.0 + half)
}

async fn bands(
    store: &Stores,
    device: &str,
    (from, to): (i64, i64),
    n: usize,
) -> Option<Vec<BandRow>> {
    store
        .series
        .bands(&series(device), from, to, n)
        .await
        .unwrap()
}

/// A device with a point and a band every minute for five days.
async fn scored(store: &Stores, device: &str) {
    store
        .registry
        .create_device(NewDevice::new(device))
        .await
        .unwrap();
    let minutes = DAYS * DAY / MIN;
    let points: Vec<Point> = (0..minutes)
        .map(|i| super::point(device, "t", T0 + i * MIN, 10.0))
        .collect();
    store.series.append(&points).await.unwrap();
    let rows = (0..minutes)
        .map(|i| (series(device), band(T0 + i * MIN + 5_000, 1.0)))
        .collect();
    store.series.save_bands(rows).await.unwrap();
}

pub async fn bands_merge_downsample_expire_with_the_minute_rollups_and_go_with_the_device(
    backend: &impl Backend,
) {
    {
        let store = backend.open();
        assert_eq!(bands(&store, "pump-1", (T0, T0 + DAY), 10).await, None);
        scored(&store, "pump-1").await;
        scored(&store, "pump-2").await;

        // A second part of a minute merges with the first: weighted mean, widest range.
        let part = BandRow {
            expected: 13.0,
            ..BandRow::scored(T0 + 30_000, 0.0, 4.0, 12.0)
        };
        let mut two = part;
        two.count = 2;
        store
            .series
            .save_bands(vec![(series("pump-1"), two)])
            .await
            .unwrap();
        let first = bands(&store, "pump-1", (T0, T0 + MIN), 10).await.unwrap();
        assert_eq!(
            first,
            [BandRow {
                bucket_ms: T0,
                count: 3,
                expected: 12.0,
                lower: 4.0,
                upper: 12.0,
            }]
        );

        // Drawn at 10 buckets: whole-minute buckets, every scored point counted once.
        let drawn = bands(&store, "pump-2", (T0, T0 + DAYS * DAY), 10)
            .await
            .unwrap();
        assert!(drawn.len() <= 10 && drawn.len() >= 9, "{}", drawn.len());
        assert_eq!(
            drawn.iter().map(|b| b.count).sum::<u64>(),
            (DAYS * DAY / MIN) as u64
        );
        assert!(drawn.windows(2).all(|w| w[0].bucket_ms < w[1].bucket_ms));
        assert!(drawn.iter().all(|b| (b.bucket_ms - T0) % MIN == 0));
        assert!(
            drawn
                .iter()
                .all(|b| (b.lower, b.expected, b.upper) == (9.0, 10.0, 11.0))
        );
        // A range inside a minute still finds that minute's band.
        assert_eq!(
            bands(&store, "pump-2", (T0 + 20_000, T0 + 40_000), 2)
                .await
                .unwrap()
                .len(),
            1
        );

        // 1-minute rollups kept two days: older bands go with them, newer ones stay, and a
        // band for an expired minute is not written again.
        store
            .retention
            .set_retention(RetentionPolicy {
                raw_ms: DAY,
                rollup_1m_ms: 2 * DAY,
                ..RetentionPolicy::default()
            })
            .await
            .unwrap();
        let now = T0 + DAYS * DAY;
        maintain_all(&store, now).await;
        let cut = T0 + 3 * DAY;
        let all = bands(&store, "pump-2", (T0, now), 100_000).await.unwrap();
        assert_eq!(all.first().map(|b| b.bucket_ms), Some(cut));
        assert_eq!(all.len() as i64, (now - cut) / MIN);
        store
            .series
            .save_bands(vec![(series("pump-2"), band(T0 + DAY, 1.0))])
            .await
            .unwrap();
        assert!(
            bands(&store, "pump-2", (T0, cut), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Erasing a device removes its bands; a late save for it is dropped.
        store
            .registry
            .delete_device(&dev("pump-1"), true)
            .await
            .unwrap();
        store
            .series
            .save_bands(vec![(series("pump-1"), band(now - MIN, 1.0))])
            .await
            .unwrap();
        assert_eq!(bands(&store, "pump-1", (T0, now), 10).await, None);
    }
    // Kept across a reopen.
    let store = backend.open();
    let now = T0 + DAYS * DAY;
    let kept = bands(&store, "pump-2", (now - DAY, now), 24).await.unwrap();
    assert_eq!(kept.len(), 24);
    assert_eq!(
        kept.iter().map(|b| b.count).sum::<u64>(),
        (DAY / MIN) as u64
    );
    assert_eq!(bands(&store, "pump-1", (T0, now), 10).await, None);
}
