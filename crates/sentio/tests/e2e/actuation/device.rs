//! A test device over MQTT 3.1.1 (rumqttc): subscribes to its command and desired-twin topics
//! and reads what the node sends it (its client acknowledges each QoS 1 message as it is read).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS, SubscribeReasonCode};
use sentio::node::Node;
use serde_json::Value;

use crate::support::*;

/// A connected device.
pub struct Device {
    pub id: String,
    pub client: AsyncClient,
    pub el: EventLoop,
}

impl Device {
    /// Connects as `id` with its secret (client id `<id>-<tag>`).
    pub async fn connect(node: &Node, id: &str, secret: &str, tag: &str) -> Self {
        let (client, el) = mqtt_connect(node, &format!("{id}-{tag}"), id, secret)
            .await
            .expect("the device connects");
        Self {
            id: id.to_string(),
            client,
            el,
        }
    }

    /// Subscribes to `filters` at QoS 1; the SUBACK's codes.
    pub async fn subscribe(&mut self, filters: &[String]) -> Vec<SubscribeReasonCode> {
        let subs = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        self.client.subscribe_many(subs).await.unwrap();
        next_v3(&mut self.el, |p| match p {
            Packet::SubAck(a) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap()
    }

    /// Subscribes to its own command topics and desired twin; both must be granted.
    pub async fn subscribe_own(&mut self) {
        let own = [
            format!("devices/{}/commands/+", self.id),
            format!("devices/{}/twin/desired", self.id),
        ];
        let codes = self.subscribe(&own).await;
        assert!(
            codes
                .iter()
                .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
            "{codes:?}"
        );
    }

    /// The next message the node sends it, within `secs`: (topic, JSON payload).
    pub async fn next_message(&mut self, secs: u64) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.el.poll())
                .await
                .ok()?;
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev {
                let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                return Some((p.topic.clone(), body));
            }
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: &Value) {
        publish_acked(
            &self.client,
            &mut self.el,
            topic,
            payload.to_string().into_bytes(),
        )
        .await
        .unwrap();
    }

    /// Publishes a retained QoS 1 message; whether the broker accepted it is read elsewhere
    /// (a 3.1.1 client's refused publish still gets its plain PUBACK).
    pub async fn publish_retained(&mut self, topic: &str, payload: &Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload.to_string())
            .await
            .unwrap();
        next_v3(&mut self.el, |p| {
            matches!(p, Packet::PubAck(_)).then_some(())
        })
        .await
        .unwrap();
    }

    /// Keeps the connection served (acks, pings) for `ms`.
    pub async fn idle(&mut self, ms: u64) {
        let _ = tokio::time::timeout(Duration::from_millis(ms), async {
            loop {
                if self.el.poll().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// Sends a command; the API's answer (status, body).
pub async fn send_command(node: &Node, device: &str, body: Value) -> (u16, Value) {
    api(
        node,
        "POST",
        &format!("/api/v1/devices/{device}/commands"),
        Some(body),
    )
    .await
}

/// Waits until the command is in `state`; the command then.
pub async fn wait_state(node: &Node, device: &str, id: &str, state: &str, secs: u64) -> Value {
    let path = format!("/api/v1/devices/{device}/commands/{id}");
    let last = std::sync::Mutex::new(Value::Null);
    let got = eventually(secs, || async {
        let (st, body) = api(node, "GET", &path, None).await;
        assert_eq!(st, 200, "{body}");
        *last.lock().unwrap() = body.clone();
        (body["state"] == state).then_some(body)
    })
    .await;
    got.unwrap_or_else(|| {
        panic!(
            "command {id} not {state} within {secs} s: {}",
            last.lock().unwrap()
        )
    })
}
