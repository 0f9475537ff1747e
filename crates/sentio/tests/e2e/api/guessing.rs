//! Guessing the admin token over HTTP: wrong tokens are counted per address in `/metrics`,
//! and past the allowance the address is answered `429` with `Retry-After` (even with the
//! right token) until its window ends, while other addresses are served;
//! the log has one line per address and interval. Device secrets guessed over HTTP Basic
//! count against the same allowance.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::raw_http::{header, status};
use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Sends `request` from the loopback address `from` to `to`: the raw response.
async fn exchange(from: [u8; 4], to: SocketAddr, request: &str) -> String {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    let mut s = s.connect(to).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// One `GET path` from the loopback address `from` with `Authorization: Bearer <token>`:
/// the raw response.
async fn get_from(from: [u8; 4], to: SocketAddr, path: &str, token: &str) -> String {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    exchange(from, to, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guessing_is_counted_and_slowed_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.http.limits.auth_failures_per_window = 5;
        c.http.limits.auth_failure_window_ms = 3_000;
    })
    .await;
    let (guesser, other) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let at = node.http_addr;
    for i in 0..5 {
        let r = get_from(guesser, at, "/api/v1/devices", &format!("guess-{i:028}")).await;
        assert_eq!(status(&r), 401, "{r}");
    }
    // Over the allowance: refused and told how long to wait, even with the right token.
    for token in ["guess-again", TOKEN] {
        let r = get_from(guesser, at, "/api/v1/devices", token).await;
        assert_eq!(status(&r), 429, "{r}");
        let wait: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
        assert!((1..=3).contains(&wait), "{r}");
    }
    // Another address is served meanwhile, and sees the counts.
    let r = get_from(other, at, "/metrics", TOKEN).await;
    assert_eq!(status(&r), 200, "{r}");
    let sample = |name: &str| -> u64 {
        r.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} not in /metrics: {r}"))
            .parse()
            .unwrap()
    };
    assert_eq!(sample("sentio_http_auth_failures_total"), 5, "{r}");
    assert_eq!(sample("sentio_http_auth_throttled_total"), 2, "{r}");
    // Once the window has passed the guesser's right token is accepted again.
    let ok = eventually(10, || async {
        let r = get_from(guesser, at, "/api/v1/devices", TOKEN).await;
        (status(&r) == 200).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "the right token is still refused after the window"
    );
    node.shutdown().await;
}

/// One `POST path` of a telemetry body from `from` with HTTP Basic `user:password`: the raw
/// response.
async fn post_basic(from: [u8; 4], to: SocketAddr, path: &str, user: &str, pass: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let body = r#"{"t": 1.5}"#;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(from, to, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_secret_guessing_over_http_is_counted_and_slowed_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.http.limits.auth_failures_per_window = 3;
        c.http.limits.auth_failure_window_ms = 60_000;
    })
    .await;
    let secret = register(&node, "meter-1", "meter").await;
    let (guesser, other) = ([127, 0, 0, 3], [127, 0, 0, 4]);
    let (at, path) = (node.http_addr, "/api/v1/devices/meter-1/telemetry");
    for i in 0..3 {
        let r = post_basic(guesser, at, path, "meter-1", &format!("guess-{i}")).await;
        assert_eq!(status(&r), 401, "{r}");
    }
    // Over the allowance: even the right secret waits, from that address only.
    let r = post_basic(guesser, at, path, "meter-1", &secret).await;
    assert_eq!(status(&r), 429, "{r}");
    assert!(header(&r, "retry-after").is_some(), "{r}");
    let r = post_basic(other, at, path, "meter-1", &secret).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(
        metric_value(&node, "sentio_http_auth_failures_total").await,
        3
    );
    // The wrong secrets are recorded on the device (off the request's path).
    let recorded = eventually(10, || async {
        let (_, d) = api(&node, "GET", "/api/v1/devices/meter-1", None).await;
        (d["rejected_count"].as_u64() == Some(3)).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "three refusals recorded on the device");
    node.shutdown().await;
}

/// The real binary logs one address's wrong tokens once per interval, not once per request.
#[test]
fn wrong_tokens_are_logged_once_per_interval_per_address() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
        .args(["--no-mqtt-tls", "--data"])
        .arg(dir.path())
        .env("SENTIO_ADMIN_TOKEN", TOKEN)
        .env("SENTIO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let http = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node starts");
        if let Some(rest) = line.split("http=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let at: SocketAddr = http.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for i in 0..8 {
        let r = rt.block_on(get_from(
            [127, 0, 0, 1],
            at,
            "/api/v1/devices",
            &format!("g{i}"),
        ));
        assert_eq!(status(&r), 401, "{r}");
    }
    let r = rt.block_on(get_from(
        [127, 0, 0, 2],
        at,
        "/api/v1/devices",
        "other-guess",
    ));
    assert_eq!(status(&r), 401, "{r}");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let lines: Vec<String> = rx
        .try_iter()
        .filter(|l| l.contains("wrong admin or API token"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per address: {lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("127.0.0.1"),
        "{lines:#?}"
    );
    assert!(lines[1].contains("127.0.0.2"), "{lines:#?}");
}
