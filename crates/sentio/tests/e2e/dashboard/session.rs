//! The session routes the page relies on: `GET /api/v1/session` gives a reloaded page its
//! user, role and CSRF token again (and only to the cookie's holder), and the live stream
//! takes the session cookie but refuses an upgrade from another origin.

use serde_json::json;

use super::add_user;
use crate::support::*;

/// The status of the answer to a WebSocket upgrade of the stream with `headers`.
async fn upgrade_status(addr: std::net::SocketAddr, headers: &str) -> u16 {
    raw_http::upgrade_status(addr, "/api/v1/stream", headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_page_gets_its_session_back_and_its_stream_on_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let base = format!("http://{}", node.http_addr);
    let password = add_user(&node, "vic", "viewer").await;
    let login = http_with(
        "POST",
        format!("{base}/api/v1/session"),
        vec![("Origin".into(), base.clone())],
        Some(json!({"name": "vic", "password": password})),
        None,
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login.set_cookies[0].split(';').next().unwrap().to_string();
    let whoami = |cookie: Option<String>| {
        let url = format!("{base}/api/v1/session");
        let headers = cookie.map(|c| vec![("Cookie".to_string(), c)]);
        async move { http_with("GET", url, headers.unwrap_or_default(), None, None).await }
    };

    // After a reload the page has only its cookie: who it is, its role and the same CSRF
    // token as at login.
    let me = whoami(Some(cookie.clone())).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["name"], "vic");
    assert_eq!(me.body["user"]["role"], "viewer");
    assert_eq!(me.body["csrf_token"], login.body["csrf_token"]);
    assert_eq!(me.body["expires_ms"], login.body["expires_ms"]);
    // Without a session there is nothing to tell, the admin token included.
    assert_eq!(whoami(None).await.status, 401);
    let other = format!("sentio_session={}", "ab".repeat(32));
    assert_eq!(whoami(Some(other)).await.status, 401);
    let (st, _) = api(&node, "GET", "/api/v1/session", None).await;
    assert_eq!(st, 401, "a bearer token is no session");

    // The stream takes the cookie; a page of another origin cannot use it.
    let addr = node.http_addr;
    let own = format!("Cookie: {cookie}\r\nOrigin: {base}\r\n");
    assert_eq!(upgrade_status(addr, &own).await, 101);
    let evil = format!("Cookie: {cookie}\r\nOrigin: https://evil.example\r\n");
    assert_eq!(upgrade_status(addr, &evil).await, 403);
    assert_eq!(
        upgrade_status(addr, &format!("Origin: {base}\r\n")).await,
        401
    );

    // Logged out, the cookie no longer works anywhere.
    let out = http_with(
        "DELETE",
        format!("{base}/api/v1/session"),
        vec![
            ("Cookie".into(), cookie.clone()),
            ("Origin".into(), base.clone()),
            (
                "X-CSRF-Token".into(),
                me.body["csrf_token"].as_str().unwrap().into(),
            ),
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert_eq!(whoami(Some(cookie.clone())).await.status, 401);
    assert_eq!(upgrade_status(addr, &own).await, 401);
    node.shutdown().await;
}
