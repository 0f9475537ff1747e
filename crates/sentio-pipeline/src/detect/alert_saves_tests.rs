//! Many rules on one device, one point that opens all their alerts: the detect stage saves
//! them in one store transaction, not one (an fsynced commit each) per alert. Counted at the
//! real SQLite store's alert seam.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sentio_core::{
    Ack, Alert, AlertState, Comment, DeviceId, Feedback, Point, Rule, RuleId, Selector, Severity,
};
use sentio_store::{AlertFilter, AlertStore, NewDevice, SqliteStore, Stores};

use crate::{LocalBus, Pipeline, PipelineConfig};

/// The store's alert seam, counting the calls that write alerts.
struct Counting {
    store: Arc<dyn AlertStore>,
    writes: AtomicUsize,
}

#[async_trait]
impl AlertStore for Counting {
    async fn save_alert(&self, alert: &Alert) -> sentio_store::Result<i64> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.save_alert(alert).await
    }
    async fn save_alerts(&self, alerts: Vec<Alert>) -> sentio_store::Result<Vec<i64>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.save_alerts(alerts).await
    }
    async fn list_alerts(&self, filter: AlertFilter) -> sentio_store::Result<Vec<Alert>> {
        self.store.list_alerts(filter).await
    }
    async fn get_alert(&self, id: i64) -> sentio_store::Result<Option<Alert>> {
        self.store.get_alert(id).await
    }
    async fn save_feedback(&self, id: i64, feedback: &Feedback) -> sentio_store::Result<()> {
        self.store.save_feedback(id, feedback).await
    }
    async fn acknowledge(&self, id: i64, ack: &Ack) -> sentio_store::Result<Option<Ack>> {
        self.store.acknowledge(id, ack).await
    }
    async fn set_resolved_by(&self, id: i64, by: &str) -> sentio_store::Result<()> {
        self.store.set_resolved_by(id, by).await
    }
    async fn add_comment(&self, id: i64, comment: &Comment) -> sentio_store::Result<bool> {
        self.store.add_comment(id, comment).await
    }
    async fn comments(&self, id: i64) -> sentio_store::Result<Vec<Comment>> {
        self.store.comments(id).await
    }
}

const RULES: usize = 300;

#[tokio::test]
async fn the_alerts_a_batch_opens_are_saved_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut stores = Stores::of(store.clone());
    stores
        .registry
        .create_device(NewDevice::new("d1"))
        .await
        .unwrap();
    let device = DeviceId::parse("d1").unwrap();
    for r in 0..RULES {
        let rule = Rule {
            id: RuleId::parse(&format!("r{r}")).unwrap(),
            name: format!("rule {r}"),
            enabled: true,
            selector: Selector {
                devices: vec![device.clone()],
                metrics: vec!["m".into()],
                ..Selector::default()
            },
            condition: format!("m > {r}.0"),
            clear: None,
            for_ms: 0,
            clear_for_ms: Rule::DEFAULT_CLEAR_FOR_MS,
            cool_down_ms: Rule::DEFAULT_COOL_DOWN_MS,
            severity: Severity::Warning,
            actions: Vec::new(),
            on_resolve: Vec::new(),
        };
        stores.rules.put_rule(&rule).await.unwrap();
    }
    let counting = Arc::new(Counting {
        store: stores.alerts.clone(),
        writes: AtomicUsize::new(0),
    });
    stores.alerts = counting.clone();
    let pipeline = Pipeline::start(
        PipelineConfig::default(),
        stores,
        Arc::new(LocalBus::new(1024)),
        None,
    )
    .await
    .unwrap();
    let point = Point {
        device,
        metric: "m".into(),
        ts_ms: sentio_core::time::now_ms(),
        value: 1e6,
    };
    pipeline
        .ingest
        .submit(vec![point], Vec::new(), true)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let open = loop {
        let open = store
            .list_alerts(AlertFilter {
                state: Some(AlertState::Open),
                device: None,
                acknowledged: None,
                limit: 1000,
            })
            .await
            .unwrap();
        if open.len() >= RULES || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pipeline.shutdown().await;
    assert_eq!(open.len(), RULES, "every rule opened its alert");
    assert_eq!(
        counting.writes.load(Ordering::SeqCst),
        1,
        "the {RULES} alerts of one batch are one write"
    );
}
