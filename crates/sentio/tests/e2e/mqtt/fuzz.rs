//! Fuzzing the packet path Sentio owns. Random bytes and mutated valid MQTT packets
//! (CONNECT with real credentials, SUBSCRIBE, PUBLISH of telemetry and of plain messages) are
//! sent over TCP to a live in-process node. Nothing may panic (a panic hook counts them, in
//! any task of that node's runtime), and after every batch a normal client still connects and
//! gets a PUBACK.
//! `SENTIO_FUZZ_CASES=200000` runs longer (default 2,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::raw::{self, Raw, connect_raw};
use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

/// One edit of a valid packet sequence.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Set(i, v) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b = *v;
                }
            }
            Mutation::Flip(i, bit) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Insert(i, v) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

#[test]
fn random_and_mutated_packets_never_crash_the_broker() {
    let cases: u32 = std::env::var("SENTIO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let _heavy = heavy_blocking();
    // The panic hook is process-wide and other tests run beside this one: count only the
    // panics of this test's thread and of its runtime's threads, where the node runs (it
    // starts no threads of its own).
    const NODE_THREADS: &str = "fuzz-node";
    let test_thread = std::thread::current().id();
    let panics = Arc::new(AtomicUsize::new(0));
    let default_hook = std::panic::take_hook();
    let p = panics.clone();
    std::panic::set_hook(Box::new(move |info| {
        let here = std::thread::current();
        if here.id() == test_thread || here.name() == Some(NODE_THREADS) {
            p.fetch_add(1, Ordering::SeqCst);
        }
        default_hook(info);
    }));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(NODE_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (node, user, pass, secret) = rt.block_on(async {
        // Mutated CONNECTs fail their login by the thousand from one address: the login
        // back-off (tested in `login_guessing`) would refuse the health checks too.
        let node = start_with(dir.path(), |c| c.mqtt.limits.max_auth_failures = 0).await;
        let (_, user, pass) = create_token(
            &node,
            "fuzz",
            json!([{"filter": "load/#", "rights": "both"}]),
        )
        .await;
        let secret = register(&node, "fz", "sensor").await;
        (node, user, pass, secret)
    });
    let addr = node.mqtt_addr;

    // Valid sequences the mutations start from, reaching auth, ACL, the tap and telemetry
    // ingest once the CONNECT survives.
    let v5 = raw::connect(5, "fz-tok", &user, &pass, 0);
    let v4 = raw::connect(4, "fz-tok4", &user, &pass, 0);
    let dev = raw::connect(5, "fz", "fz", &secret, 60);
    let bases: Vec<Vec<u8>> = vec![
        v5.clone(),
        v4.clone(),
        [
            v5.clone(),
            raw::subscribe_v5(&["load/#", "$share/g/load/+"]),
        ]
        .concat(),
        [v5.clone(), raw::publish_v5("load/a", 1, 1, b"hello")].concat(),
        [v5.clone(), raw::publish_v5("load/b", 2, 2, b"hello")].concat(),
        [v4, raw::publish_v5("load/c", 1, 3, b"x")].concat(),
        [
            dev.clone(),
            raw::publish_v5(
                "devices/fz/telemetry",
                1,
                4,
                br#"{"ts":1796000000000,"temp":21.5,"ok":true}"#,
            ),
        ]
        .concat(),
        [
            dev,
            raw::publish_v5("devices/fz/telemetry", 0, 0, br#"[{"temp":1},{"hum":2}]"#),
        ]
        .concat(),
        raw::packet(0xC0, &[]),
        raw::packet(0xE0, &[0]),
    ];
    let bases = Arc::new(bases);
    let b = bases.clone();
    let input = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (0..bases.len(), proptest::collection::vec(mutation(), 1..6))
            .prop_map(move |(i, muts)| apply(b[i].clone(), &muts)),
    ];

    let health = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let (mut c, rc) = connect_raw(addr, 5, "health", &user, &pass).await;
            assert_eq!(rc, 0, "a normal client connects");
            c.send(&raw::publish_v5("load/health", 1, 9, b"ok"))
                .await
                .unwrap();
            let ack = c.expect(4).await;
            assert_eq!(&ack[..2], &[0, 9]);
            assert!(ack.len() == 2 || ack[2] == 0, "PUBACK success: {ack:?}");
        })
    };

    let runs = AtomicUsize::new(0);
    // Sequences the broker answered with a packet (a CONNACK at least): how deep they got.
    let answered = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&input, |bytes| {
            rt.block_on(async {
                let mut c = Raw::open(addr).await;
                let _ = c.send(&bytes).await;
                // Give the broker a moment to answer; then hang up either way.
                if let raw::Read::Packet(..) = c.read(Duration::from_millis(2)).await {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of(250) {
                health(&rt);
            }
            prop_assert_eq!(panics.load(Ordering::SeqCst), 0, "a panic in the broker");
            Ok(())
        })
        .unwrap();
    health(&rt);
    let runs = runs.load(Ordering::SeqCst);
    eprintln!(
        "fuzz: {runs} packet sequences sent ({} answered with a packet), 0 panics, the broker still serves",
        answered.load(Ordering::SeqCst)
    );
    assert!(runs >= cases as usize);
    assert_eq!(panics.load(Ordering::SeqCst), 0);
    rt.block_on(node.shutdown());
}
