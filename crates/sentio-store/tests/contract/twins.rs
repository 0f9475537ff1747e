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
