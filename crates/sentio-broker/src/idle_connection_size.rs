//! The memory an idle MQTT connection holds for its whole life: mqtt5's `ClientHandler` and
//! the future of its `run` (the task's state while it waits in the packet loop). Bounded here
//! so that neither creeps back up (issue 16; `vendor/mqtt5`, SENTIO-PATCH).

use std::sync::Arc;

use mqtt5::broker::auth::AllowAllAuthProvider;
use mqtt5::broker::client_handler::ClientHandler;
use mqtt5::broker::config::BrokerConfig;
use mqtt5::broker::router::MessageRouter;
use mqtt5::broker::sys_topics::BrokerStats;
use mqtt5::broker::transport::BrokerTransport;
use mqtt5::broker::{ResourceLimits, ResourceMonitor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

const MAX_HANDLER_BYTES: usize = 1024;
const MAX_TASK_BYTES: usize = 2300;
/// Sentio's own acceptor (WebSocket, mutual TLS): `run`'s future and a little around it.
const MAX_ACCEPTED_TASK_BYTES: usize = 2450;

#[tokio::test]
async fn an_idle_connection_task_stays_small() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    let (_shutdown_tx, shutdown_rx) = broadcast::channel(1);
    let handler = ClientHandler::new(
        BrokerTransport::tcp(server),
        peer,
        Arc::new(BrokerConfig::default()),
        Arc::new(MessageRouter::new()),
        Arc::new(AllowAllAuthProvider),
        None,
        Arc::new(BrokerStats::new()),
        Arc::new(ResourceMonitor::new(ResourceLimits::default())),
        shutdown_rx,
    );
    let handler_bytes = std::mem::size_of_val(&handler);
    let task_bytes = std::mem::size_of_val(&handler.run());
    println!("ClientHandler {handler_bytes} B, its run future {task_bytes} B");
    assert!(
        handler_bytes <= MAX_HANDLER_BYTES,
        "ClientHandler is {handler_bytes} B"
    );
    assert!(
        task_bytes <= MAX_TASK_BYTES,
        "run's future is {task_bytes} B"
    );
}

/// A connection Sentio accepts itself (`accept.rs`: WebSocket, mutual TLS) holds `run`'s
/// future and not a second copy of the handler beside it.
#[tokio::test]
async fn a_connection_sentio_accepts_holds_one_handler() {
    let config = BrokerConfig::default()
        .with_bind_address(([127, 0, 0, 1], 0))
        .with_storage(mqtt5::broker::config::StorageConfig::new().with_persistence(false));
    let broker = mqtt5::broker::MqttBroker::with_config(config.clone())
        .await
        .expect("broker");
    let acceptor = crate::accept::Acceptor::new(config, &broker);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    let serve = acceptor.serve(BrokerTransport::tcp(server), peer, acceptor.base_auth());
    let task_bytes = std::mem::size_of_val(&serve);
    println!("Acceptor::serve's future {task_bytes} B");
    assert!(
        task_bytes <= MAX_ACCEPTED_TASK_BYTES,
        "Acceptor::serve's future is {task_bytes} B"
    );
}
