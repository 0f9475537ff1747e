//! The cloud registers edges (`/api/v1/edges`, the secret shown once); an edge logs in as
//! `edge:<id>` with it and may publish and subscribe only under `edges/<id>/...`: never
//! another edge's topics, never a device's, and nobody else's publish on its uplink topic is
//! applied.

use rumqttc::v5::ConnectionError as ConnError5;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as Code5, Packet as Packet5, PubAckReason, SubscribeReasonCode as Sub5,
};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_are_registered_once_and_confined_to_their_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let e1 = super::create_edge(&node.http_addr.to_string(), "site-1").await;
    assert_eq!(e1["mqtt_username"], "edge:site-1");
    assert_eq!(e1["uplink_topic"], "edges/site-1/up/points");
    let secret = e1["secret"].as_str().unwrap().to_string();
    assert_eq!(
        api(
            &node,
            "POST",
            "/api/v1/edges",
            Some(json!({"id": "site-1"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        api(&node, "POST", "/api/v1/edges", Some(json!({"id": "a/b"})))
            .await
            .0,
        400
    );
    let e2 = super::create_edge(&node.http_addr.to_string(), "site-2").await;
    register(&node, "dev-1", "room").await;
    let (status, list) = api(&node, "GET", "/api/v1/edges", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["edges"].as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&secret),
        "never the secret again"
    );
    assert_eq!(api(&node, "GET", "/api/v1/edges/nope", None).await.0, 404);
    assert_eq!(
        api(&node, "GET", "/api/v1/uplink", None).await.0,
        404,
        "not an edge"
    );

    // A wrong secret, or another edge's, is refused.
    for (user, pass) in [
        ("edge:site-1", "guess"),
        ("edge:site-1", e2["secret"].as_str().unwrap()),
        ("edge:nobody", secret.as_str()),
    ] {
        match mqtt5_connect(&node, "e-bad", Some((user, pass))).await {
            Err(ConnError5::ConnectionRefused(Code5::BadUserNamePassword)) => {}
            other => panic!("{user}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }

    let (c, mut el) = mqtt5_connect(&node, "e1", Some(("edge:site-1", &secret)))
        .await
        .expect("the edge logs in with its secret");
    for (filter, want) in [
        // The topics an edge subscribes to: its re-sync requests and its devices' commands.
        ("edges/site-1/down/resync", Sub5::Success(Q5::AtLeastOnce)),
        ("edges/site-1/down/commands", Sub5::Success(Q5::AtLeastOnce)),
        ("edges/site-2/down/commands", Sub5::NotAuthorized),
        ("edges/site-1/down/#", Sub5::NotAuthorized),
        ("edges/site-1/#", Sub5::NotAuthorized),
        ("edges/site-2/#", Sub5::NotAuthorized),
        ("edges/+/up/points", Sub5::NotAuthorized),
        ("devices/#", Sub5::NotAuthorized),
        ("#", Sub5::NotAuthorized),
    ] {
        c.subscribe(filter, Q5::AtLeastOnce).await.unwrap();
        let got = next_v5(&mut el, |p| match p {
            Packet5::SubAck(a) => Some(a.return_codes[0]),
            _ => None,
        })
        .await
        .unwrap();
        assert_eq!(got, want, "{filter}");
    }
    for topic in [
        "edges/site-2/up/points",
        "edges/site-1/down/resync",
        "devices/dev-1/telemetry",
        "elsewhere",
    ] {
        c.publish(topic, Q5::AtLeastOnce, false, b"{\"t\": 1}".to_vec())
            .await
            .unwrap();
        let reason = next_v5(&mut el, |p| match p {
            Packet5::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await
        .unwrap();
        assert_eq!(reason, PubAckReason::NotAuthorized, "{topic}");
    }
    assert!(points(&node, "dev-1", "t").await.is_empty());

    // A token allowed everything may publish on an edge's uplink topic, but it is not the
    // edge: nothing is applied.
    let (_, user, pass) =
        create_token(&node, "wide", json!([{"filter": "#", "rights": "both"}])).await;
    let (t, mut tel) = mqtt5_connect(&node, "wide", Some((&user, &pass)))
        .await
        .unwrap();
    let point = [sentio_core::Point {
        device: sentio_core::DeviceId::parse("dev-1").unwrap(),
        metric: "t".into(),
        ts_ms: now_ms(),
        value: 1.0,
    }];
    let batch = sentio_store::wire::encode(
        sentio_store::Incarnation([9; 16]),
        &[(sentio_store::BatchSeq(1), 0, &point)],
    );
    t.publish("edges/site-1/up/points", Q5::AtLeastOnce, false, batch)
        .await
        .unwrap();
    next_v5(&mut tel, |p| matches!(p, Packet5::PubAck(_)).then_some(()))
        .await
        .unwrap();
    assert!(points(&node, "dev-1", "t").await.is_empty());
    let (_, shown) = api(&node, "GET", "/api/v1/edges/site-1", None).await;
    assert_eq!(shown["points"], 0, "{shown}");
    assert_eq!(shown["connected"], true, "{shown}");
    node.shutdown().await;
}
