//! Starting a node: a taken port, a shared data directory and a generated admin token, each
//! with a clear error or a private file.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_clear_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();

    let mut c = node_config(dir.path());
    c.http.listen = port;
    let err = try_start(c).await.err().expect("HTTP port taken");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&port.port().to_string()) && msg.contains("http.listen"),
        "{msg}"
    );

    let mut c = node_config(dir.path());
    c.mqtt.listen = port;
    let err = try_start(c).await.err().expect("MQTT port taken");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&port.port().to_string()) && msg.contains("mqtt.listen"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_token_is_private_and_random() {
    let dir = tempfile::tempdir().unwrap();
    let c = node_config(dir.path());
    let node = try_start(c).await.unwrap();
    let path = dir.path().join("admin.token");
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(token.trim(), node.admin_token);
    assert!(token.trim().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (st, _) = http(
        "GET",
        format!("http://{}/api/v1/devices", node.http_addr),
        Some(format!("Bearer {}", node.admin_token)),
        None,
    )
    .await;
    assert_eq!(st, 200);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let c = node_config(dir.path());
    let err = try_start(c).await.err().expect("second node refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("in use by another running sentio") && msg.contains("--data"),
        "{msg}"
    );
    node.shutdown().await;
}
