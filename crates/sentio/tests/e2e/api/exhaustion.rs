//! What a client without credentials can hold on the HTTP port, through raw sockets: a silent
//! socket or one sending its headers or body a byte at a time is closed at its timeout, the
//! connection caps (in all and per address) refuse the next connection with `503` while the
//! node keeps answering once the idle ones are gone, and the browser-facing protections
//! (no `?token=` outside the stream, `no-store` on secrets, CSP and framing headers, the
//! WebSocket `Origin` check).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::raw_http::{header, read_until_closed, status, upgrade_status};
use crate::support::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Sends one request with `Connection: close` and returns the whole response.
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "no end of response: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.http.limits.header_timeout_ms = 500).await;
    let mut s = TcpStream::connect(node.http_addr).await.unwrap();
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "a silent socket is still open after 5 s");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_socket_is_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.http.limits.header_timeout_ms = 1000).await;
    let s = TcpStream::connect(node.http_addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // Headers trickling in at 10 bytes a second, never finished.
    let trickle = tokio::spawn(async move {
        wr.write_all(b"GET /api/v1/health HTTP/1.1\r\n").await.ok();
        for b in b"X-Slow: ".iter().cycle() {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(6), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
            Err(_) => break false,
        }
    };
    trickle.abort();
    assert!(
        closed,
        "a socket sending headers slowly is still open after 6 s"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_at_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| c.http.limits.body_timeout_ms = 1000).await;
    let s = TcpStream::connect(node.http_addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST /api/v1/query HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n",
        node.http_addr
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        loop {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The request ends, with an answer or a close, at the body timeout.
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(6), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    trickle.abort();
    assert!(
        ended,
        "a body sent a byte at a time still holds its request after 6 s"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || status(&text) >= 400, "{text}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_and_health_answers_once_idle_ones_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.http.limits.max_connections = 8;
        c.http.limits.max_connections_per_address = 0;
        c.http.limits.header_timeout_ms = 60_000;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(node.http_addr).await.unwrap());
    }
    // Give the accept loop time to take them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(node.http_addr).await.unwrap();
    let (text, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(closed, "the connection beyond the cap is held open");
    assert_eq!(status(&text), 503, "{text}");

    drop(idle);
    let health = format!("http://{}/api/v1/health", node.http_addr);
    let answered = eventually(5, || {
        let url = health.clone();
        async move { (http("GET", url, None, None).await.0 == 200).then_some(()) }
    })
    .await;
    assert!(
        answered.is_some(),
        "/health does not answer once the idle sockets are gone"
    );
    assert!(metric_value(&node, "sentio_http_connections_refused_total").await >= 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.http.limits.max_connections_per_address = 3;
        c.http.limits.header_timeout_ms = 60_000;
    })
    .await;
    let from = |ip: [u8; 4]| {
        let addr = node.http_addr;
        async move {
            let s = TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::from((ip, 0))).unwrap();
            s.connect(addr).await.unwrap()
        }
    };
    let mut hog = Vec::new();
    for _ in 0..3 {
        hog.push(from([127, 0, 0, 1]).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = from([127, 0, 0, 1]).await;
    let (text, closed) = read_until_closed(&mut fourth, Duration::from_secs(3)).await;
    assert!(closed && status(&text) == 503, "{text}");

    // Another address is still served.
    let mut other = from([127, 0, 0, 2]).await;
    let req = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.http_addr
    );
    other.write_all(req.as_bytes()).await.unwrap();
    let (text, _) = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert_eq!(status(&text), 200, "{text}");
    drop(hog);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_token_is_refused_outside_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let url = format!("http://{}/api/v1/devices?token={TOKEN}", node.http_addr);
    let (status, body) = http("GET", url, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/api/v1/stream"),
        "{body}"
    );
    // Not even beside a good header: the token must not travel in URLs.
    let url = format!("http://{}/metrics?token={TOKEN}", node.http_addr);
    assert_eq!(http("GET", url, bearer(), None).await.0, 401);
    // The header alone is fine.
    let url = format!("http://{}/api/v1/devices", node.http_addr);
    assert_eq!(http("GET", url, bearer(), None).await.0, 200);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carrying_secrets_are_not_stored_by_caches() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.http_addr;
    let post = |path: &str, body: serde_json::Value| {
        let body = body.to_string();
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let created = raw_request(
        addr,
        &post("/api/v1/devices", json!({"id": "pump-1", "kind": "pump"})),
    )
    .await;
    let rotated = raw_request(addr, &post("/api/v1/devices/pump-1/secret", json!({}))).await;
    let token = raw_request(
        addr,
        &post(
            "/api/v1/tokens",
            json!({"name": "t", "acl": [{"filter": "a/#", "rights": "both"}]}),
        ),
    )
    .await;
    for (what, r) in [
        ("device", &created),
        ("rotation", &rotated),
        ("token", &token),
    ] {
        assert!(status(r) < 300, "{what}: {r}");
        assert_eq!(header(r, "cache-control"), Some("no-store"), "{what}: {r}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.http_addr;
    for path in ["/", "/api/v1/health", "/no-such-page"] {
        let r = raw_request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let csp = header(&r, "content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {r}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&r, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&r, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_another_origin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.http_addr;
    let stream = format!("/api/v1/stream?token={TOKEN}");
    let mqtt = "Sec-WebSocket-Protocol: mqtt\r\n";
    for path in [stream.as_str(), "/mqtt"] {
        let evil = format!("{mqtt}Origin: https://evil.example\r\n");
        assert_eq!(upgrade_status(addr, path, &evil).await, 403, "{path}");
        let own = format!("{mqtt}Origin: http://{addr}\r\n");
        assert_eq!(upgrade_status(addr, path, &own).await, 101, "{path}");
        assert_eq!(upgrade_status(addr, path, mqtt).await, 101, "{path}");
    }
    node.shutdown().await;
}

/// The real binary with at most `files` open descriptors; its log goes to `log`. Returns the
/// child, the HTTP address and the MQTT address, read from its "Sentio is running" line.
/// The caller kills and waits for the child; a node that does not start is killed here.
#[allow(clippy::zombie_processes)]
fn spawn_with_file_limit(
    data: &std::path::Path,
    files: u32,
    log: &std::path::Path,
) -> (std::process::Child, SocketAddr, SocketAddr) {
    let out = std::fs::File::create(log).unwrap();
    let mut child = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -n {files}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_sentio"),
            "serve",
            "--mqtt",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--mqtt-tls",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data)
        .env("SENTIO_ADMIN_TOKEN", TOKEN)
        .env("SENTIO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("sentio starts");
    let field = |line: &str, name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("Sentio is running")) {
            return (child, field(line, "http"), field(line, "mqtt"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loops_pause_and_the_node_recovers() {
    let _heavy = heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sentio.log");
    let data = dir.path().join("data");
    let (mut child, http_addr, mqtt_addr) = spawn_with_file_limit(&data, 128, &log);

    // More idle sockets than the node has descriptors, on both ports.
    let mut idle = Vec::new();
    for i in 0..240 {
        let addr = if i % 4 == 0 { http_addr } else { mqtt_addr };
        if let Ok(s) = TcpStream::connect(addr).await {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let failures = text.lines().filter(|l| l.contains("accept")).count();
    let flood = text.len();

    drop(idle);
    let health = format!("http://{http_addr}/api/v1/health");
    let answered = eventually(10, || {
        let url = health.clone();
        async move { (http("GET", url, None, None).await.0 == 200).then_some(()) }
    })
    .await;
    // The MQTT port answers a CONNECT again (a refusal: the credentials are unknown).
    let mut mqtt = TcpStream::connect(mqtt_addr).await.unwrap();
    mqtt.write_all(&raw::connect(5, "probe", "nobody", "wrong", 0))
        .await
        .unwrap();
    let mut first = [0u8; 1];
    let connack = tokio::time::timeout(Duration::from_secs(5), mqtt.read_exact(&mut first)).await;
    // The failures are counted.
    let (_, _, metrics) = get_text(format!("http://{http_addr}/metrics"), bearer()).await;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sentio_mqtt_accept_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();

    assert!(
        (1..=6).contains(&failures),
        "{failures} accept lines ({flood} bytes of log) in 3 s out of descriptors"
    );
    assert!(
        answered.is_some(),
        "/health does not answer once the sockets are gone"
    );
    assert!(
        matches!(connack, Ok(Ok(_))) && first[0] == 0x20,
        "no CONNACK once the sockets are gone: {connack:?} {first:?}"
    );
    assert!(counted >= 1, "accept errors not in /metrics:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_goes_gzipped_when_accepted_and_revalidates_with_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.http_addr;
    let get =
        |extra: &str| format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    let plain = raw_request(addr, &get("")).await;
    assert_eq!(status(&plain), 200, "{plain}");
    assert_eq!(header(&plain, "content-encoding"), None, "{plain}");
    assert!(plain.contains("<title>"), "the page itself without gzip");
    let plain_len: usize = header(&plain, "content-length").unwrap().parse().unwrap();
    let tag = header(&plain, "etag").expect("a tag").to_string();
    assert_eq!(header(&plain, "cache-control"), Some("no-cache"), "{plain}");

    let gz = raw_request(addr, &get("Accept-Encoding: gzip, br\r\n")).await;
    assert_eq!(status(&gz), 200);
    assert_eq!(header(&gz, "content-encoding"), Some("gzip"));
    assert_eq!(header(&gz, "etag"), Some(tag.as_str()));
    let gz_len: usize = header(&gz, "content-length").unwrap().parse().unwrap();
    assert!(
        gz_len * 3 < plain_len,
        "gzipped {gz_len} B of {plain_len} B"
    );

    let again = raw_request(addr, &get(&format!("If-None-Match: {tag}\r\n"))).await;
    assert_eq!(status(&again), 304, "{again}");
    let stale = raw_request(addr, &get("If-None-Match: \"0000\"\r\n")).await;
    assert_eq!(status(&stale), 200);
    println!("page: {plain_len} B, gzipped {gz_len} B, revalidated with 304");
    node.shutdown().await;
}
