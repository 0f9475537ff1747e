//! The embedded broker seen from the API: connected clients and broker metrics.

use axum::Json;
use axum::extract::State;
use sentio_broker::BrokerCounters;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::dto::BrokerClientView;
use crate::{ApiError, AppState};

/// `GET /api/v1/broker/clients`: every connected MQTT client.
pub async fn clients(_: Admin, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let broker = s
        .broker
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this node runs without an embedded MQTT broker"))?;
    let clients: Vec<BrokerClientView> = broker
        .clients()
        .into_iter()
        .map(BrokerClientView::from)
        .collect();
    Ok(Json(json!({ "count": clients.len(), "clients": clients })))
}

/// The broker's part of `/metrics` (Prometheus text format).
pub fn metrics(c: &BrokerCounters) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    family(
        "sentio_edge_batches_total",
        "counter",
        "Batch parts from edge nodes: applied, received again (acknowledged, not applied), refused as undecodable.",
        &[
            ("{result=\"stored\"}", c.edge_batches[0]),
            ("{result=\"duplicate\"}", c.edge_batches[1]),
            ("{result=\"refused\"}", c.edge_batches[2]),
        ],
    );
    family(
        "sentio_edge_points_total",
        "counter",
        "Points applied from edge nodes' batches.",
        &[("", c.edge_points)],
    );
    family(
        "sentio_mqtt_clients_connected",
        "gauge",
        "MQTT clients connected now.",
        &[("", c.clients_connected)],
    );
    family(
        "sentio_mqtt_connections_total",
        "counter",
        "MQTT connections accepted since start.",
        &[("", c.connections_total)],
    );
    family(
        "sentio_mqtt_auth_failures_total",
        "counter",
        "MQTT CONNECTs refused: no username, unknown device or token, wrong secret or password.",
        &[("", c.auth_failures)],
    );
    family(
        "sentio_mqtt_acl_denied_total",
        "counter",
        "PUBLISHes and SUBSCRIBE filters refused by a device's or token's ACL.",
        &[
            ("{action=\"publish\"}", c.publish_denied),
            ("{action=\"subscribe\"}", c.subscribe_denied),
        ],
    );
    family(
        "sentio_mqtt_messages_received_total",
        "counter",
        "PUBLISHes accepted from clients, by QoS.",
        &[
            ("{qos=\"0\"}", c.messages_received[0]),
            ("{qos=\"1\"}", c.messages_received[1]),
            ("{qos=\"2\"}", c.messages_received[2]),
        ],
    );
    family(
        "sentio_mqtt_messages_sent_total",
        "counter",
        "PUBLISHes written to subscribers (all QoS).",
        &[("", c.messages_sent)],
    );
    family(
        "sentio_mqtt_messages_acknowledged_total",
        "counter",
        "QoS 1/2 messages sent to subscribers and acknowledged by them, by QoS.",
        &[
            ("{qos=\"1\"}", c.messages_acknowledged[1]),
            ("{qos=\"2\"}", c.messages_acknowledged[2]),
        ],
    );
    family(
        "sentio_mqtt_payload_bytes_total",
        "counter",
        "PUBLISH payload bytes, by direction.",
        &[
            ("{direction=\"in\"}", c.payload_bytes_received),
            ("{direction=\"out\"}", c.payload_bytes_sent),
        ],
    );
    family(
        "sentio_mqtt_queued_messages",
        "gauge",
        "Messages waiting in the session queues of connected clients.",
        &[("", c.queued_messages)],
    );
    family(
        "sentio_mqtt_dropped_total",
        "counter",
        "Messages the broker dropped, by reason (queue_full: a session's queue was at mqtt.limits.max_queued_messages; its oldest message went).",
        &[("{reason=\"queue_full\"}", c.dropped_queue_full)],
    );
    family(
        "sentio_mqtt_limited_total",
        "counter",
        "Packets held back or refused by a limit: publishes delayed by mqtt.limits.max_publish_rate (rate), publishes held while a subscriber's queue was full (backpressure), CONNECTs refused at mqtt.max_connections or at the connections per device, token or address (mqtt.limits.max_connections_per_*) (connections, CONNACK 0x97), SUBSCRIBE filters refused at mqtt.limits.max_subscriptions (subscriptions, SUBACK 0x97), retained PUBLISHes refused at mqtt.limits.max_retained_messages / max_retained_bytes (retained) or at store.disk_budget (retained_disk) (PUBACK 0x97), CONNECTs refused unchecked from an address over mqtt.limits.max_auth_failures (auth_backoff).",
        &[
            ("{limit=\"rate\"}", c.publishes_throttled),
            ("{limit=\"backpressure\"}", c.publishes_backpressured),
            ("{limit=\"connections\"}", c.connections_refused),
            ("{limit=\"subscriptions\"}", c.subscriptions_refused),
            ("{limit=\"retained\"}", c.retained_refused),
            ("{limit=\"retained_disk\"}", c.retained_refused_disk),
            ("{limit=\"auth_backoff\"}", c.connects_backed_off),
        ],
    );
    family(
        "sentio_mqtt_accept_errors_total",
        "counter",
        "Failed accepts on the MQTT listeners (such as too many open files), each followed by a pause.",
        &[("", c.accept_errors)],
    );
    out
}
