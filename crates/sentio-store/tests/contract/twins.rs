//! Twins: desired changes by merge patch with a version check, reported by merge patch, a
//! size cap on both, and both kept across a reopen.

use sentio_core::Twin;
use sentio_store::DesiredChange;
use serde_json::json;

use super::{Backend, dev};

pub async fn twins_patch_with_a_version_check_and_a_size_cap(backend: &impl Backend) {
    let s = backend.open();
    let room = dev("room-1");
    assert_eq!(s.twins.twin(&room).await.unwrap(), Twin::empty());
    let first = s
        .twins
        .patch_desired(
            &room,
            Some(0),
            &json!({"light": "off", "heat": {"set": 19}}),
            1024,
            1_000,
        )
        .await
        .unwrap();
    let DesiredChange::Applied(twin) = first else {
        panic!("{first:?}")
    };
    assert_eq!((twin.version, twin.desired_ms), (1, Some(1_000)));
    // Two writers from version 1: the first wins, the second is told the version now.
    let patch = json!({"heat": {"set": 21}});
    let won = s
        .twins
        .patch_desired(&room, Some(1), &patch, 1024, 2_000)
        .await
        .unwrap();
    assert!(matches!(won, DesiredChange::Applied(ref t) if t.version == 2));
    let lost = s
        .twins
        .patch_desired(&room, Some(1), &json!({"light": "on"}), 1024, 2_000)
        .await;
    assert_eq!(lost.unwrap(), DesiredChange::VersionMismatch(2));
    // Without a version the change applies to whatever is there.
    let any = s
        .twins
        .patch_desired(&room, None, &json!({"light": null}), 1024, 3_000)
        .await;
    assert!(matches!(any.unwrap(), DesiredChange::Applied(ref t) if t.version == 3));
    // Too large: nothing changes.
    let big = json!({"blob": "x".repeat(2_000)});
    assert_eq!(
        s.twins
            .patch_desired(&room, None, &big, 1024, 4_000)
            .await
            .unwrap(),
        DesiredChange::TooLarge(big.to_string().len() + r#","heat":{"set":21}"#.len())
    );
    assert_eq!(
        s.twins
            .patch_reported(&room, &big, 1024, 4_000)
            .await
            .unwrap(),
        None
    );
    let reported = s
        .twins
        .patch_reported(
            &room,
            &json!({"heat": {"set": 19}, "temp": 18.5}),
            1024,
            5_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reported.version, 3, "a report does not change the version");
    assert_eq!(reported.delta(), json!({"heat": {"set": 21}}));
    drop(s);

    let s = backend.open();
    let twin = s.twins.twin(&room).await.unwrap();
    assert_eq!(twin, reported);
    assert_eq!(twin.desired, json!({"heat": {"set": 21}}));
    assert_eq!(twin.reported_ms, Some(5_000));
    assert_eq!(s.twins.twin(&dev("room-2")).await.unwrap(), Twin::empty());
}

/// On an edge: the cloud's desired document is taken whole, once per cloud version (a
/// re-send changes nothing, an older one neither), the local version moving past both; the
/// twin then refuses local desired changes. In a cloud: an edge's reported document replaces
/// the held one unless that one is later. Both lists and reopens keep it.
pub async fn twins_take_the_clouds_desired_once_per_version_and_an_edges_reports_forward(
    backend: &impl Backend,
) {
    let s = backend.open();
    let (lamp, other) = (dev("lamp-1"), dev("lamp-2"));
    // A local change before the cloud managed the device: version 1 locally.
    let local = s
        .twins
        .patch_desired(&lamp, None, &json!({"light": "off"}), 1024, 500)
        .await
        .unwrap();
    assert!(matches!(local, DesiredChange::Applied(ref t) if t.version == 1));
    let applied = s
        .twins
        .apply_upstream_desired(&lamp, 3, &json!({"level": 2}), 1_000)
        .await
        .unwrap()
        .expect("a newer cloud version is applied");
    assert_eq!(applied.desired, json!({"level": 2}), "whole, not merged");
    assert_eq!((applied.version, applied.upstream_version), (3, Some(3)));
    for again in [3, 2] {
        let none = s
            .twins
            .apply_upstream_desired(&lamp, again, &json!({"level": 9}), 2_000)
            .await
            .unwrap();
        assert_eq!(none, None, "cloud version {again} again");
    }
    let refused = s
        .twins
        .patch_desired(&lamp, None, &json!({"level": 5}), 1024, 2_500)
        .await
        .unwrap();
    assert_eq!(refused, DesiredChange::SetUpstream(3));
    let next = s
        .twins
        .apply_upstream_desired(&lamp, 4, &json!({"level": 4}), 3_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next.version, next.desired_ms), (4, Some(3_000)));

    // The cloud's side: whole reported documents, forward only by their time.
    let set = s
        .twins
        .set_reported(&other, &json!({"light": "on"}), 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((set.reported_ms, set.version), (Some(10_000), 0));
    let older = s
        .twins
        .set_reported(&other, &json!({"light": "off"}), 9_000)
        .await
        .unwrap();
    assert_eq!(older, None, "an older report changes nothing");
    let same = s
        .twins
        .set_reported(&other, &json!({"light": "on"}), 10_000)
        .await
        .unwrap();
    assert_eq!(same, None, "a re-sent report changes nothing");
    let replaced = s
        .twins
        .set_reported(&other, &json!({"level": 1}), 11_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.reported, json!({"level": 1}), "whole, not merged");
    drop(s);

    let s = backend.open();
    let listed = s.twins.recent_twins(10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(ids, ["lamp-2", "lamp-1"], "the latest change first");
    assert_eq!(listed[1].1, next);
    assert_eq!(s.twins.recent_twins(1).await.unwrap().len(), 1);
    let with_desired = s.twins.devices_with_desired().await.unwrap();
    assert_eq!(with_desired, [lamp], "lamp-2 has only a report");
}
