//! User accounts, roles and sessions through the front door: users created over the API and by
//! `sentio user add`, a login that sets the session cookie with the right attributes (and the
//! `__Host-`/`Secure` one over HTTPS), each role's limits, the CSRF check of cookie requests,
//! the login throttle and logout.

use crate::support::*;
use serde_json::{Value, json};

/// Logs in over plain HTTP and checks the cookie's attributes.
async fn login(base: &str, name: &str, password: &str) -> Browser {
    let r = login_at(base, name, password, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.set_cookies.len(), 1, "{:?}", r.set_cookies);
    let cookie = &r.set_cookies[0];
    let (pair, attributes) = cookie.split_once("; ").unwrap();
    let (cookie_name, id) = pair.split_once('=').unwrap();
    assert_eq!(
        cookie_name, "sentio_session",
        "plain HTTP: no __Host- prefix"
    );
    assert_eq!(id.len(), 64, "256 random bits: {cookie}");
    assert_eq!(
        attributes, "Max-Age=43200; Path=/; HttpOnly; SameSite=Strict",
        "no Secure over plain HTTP"
    );
    assert!(
        !r.body.to_string().contains(id),
        "the id is only in the cookie"
    );
    assert_eq!(r.body["user"]["name"], name);
    Browser {
        base: base.to_string(),
        cookie: pair.to_string(),
        csrf: r.body["csrf_token"].as_str().unwrap().to_string(),
    }
}

async fn add_user(
    node: &sentio::node::Node,
    name: &str,
    role: &str,
    password: &str,
) -> (u16, Value) {
    api(
        node,
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": role, "password": password})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_has_its_limits_and_cookie_changes_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let base = format!("http://{}", node.http_addr);
    assert_eq!(
        add_user(&node, "vic", "viewer", "vic's long password")
            .await
            .0,
        201
    );
    assert_eq!(
        add_user(&node, "ann", "operator", "ann's long password")
            .await
            .0,
        201
    );
    let (st, e) = add_user(&node, "ann", "viewer", "another long password").await;
    assert_eq!(st, 409, "{e}");
    let (st, e) = add_user(&node, "bob", "viewer", "too short").await;
    assert_eq!(st, 400, "{e}");
    let (st, e) = add_user(&node, "bob", "root", "a long enough password").await;
    assert_eq!(st, 422, "{e}");
    let (st, list) = api(&node, "GET", "/api/v1/users", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["users"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains("long password"), "{list}");

    // A viewer reads and changes nothing.
    let vic = login(&base, "vic", "vic's long password").await;
    assert_eq!(vic.call("GET", "/api/v1/devices", None).await.status, 200);
    assert_eq!(vic.call("GET", "/api/v1/alerts", None).await.status, 200);
    let r = vic
        .call("POST", "/api/v1/devices", Some(json!({"id": "pump-9"})))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = vic
        .call(
            "POST",
            "/api/v1/alerts/999999/feedback",
            Some(json!({"false_alarm": true})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = vic
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"name": "eve", "role": "admin", "password": "eve's long password"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // An operator gives feedback on an alert, and may not register devices.
    let secret = register(&node, "tank-1", "tank").await;
    let t0 = sentio_core::time::now_ms() - 3_600_000;
    let items: Vec<Value> = (0..1800)
        .map(|i| {
            let v = if i >= 1790 {
                500.0
            } else {
                20.0 + ((i * 7919) % 13) as f64 * 0.02
            };
            json!({"ts": t0 + i * 2_000, "level": v})
        })
        .collect();
    for chunk in items.chunks(900) {
        let (st, b) = post_telemetry(&node, "tank-1", &secret, chunk).await;
        assert_eq!(st, 200, "{b}");
    }
    let alert = wait_for_kind(&node, "tank-1", "anomaly", 30).await;
    let id = alert["id"].as_i64().unwrap();
    let ann = login(&base, "ann", "ann's long password").await;
    let feedback = format!("/api/v1/alerts/{id}/feedback");
    let r = ann
        .call("POST", &feedback, Some(json!({"false_alarm": true})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ann
        .call("POST", "/api/v1/devices", Some(json!({"id": "pump-9"})))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A change by cookie without the CSRF token, with a wrong one, or from another origin is
    // refused before anything happens; Sec-Fetch-Site: same-origin stands in for Origin.
    let body = Some(json!({"false_alarm": false}));
    for extra in [
        vec![("Origin", base.as_str())],
        vec![
            ("Origin", base.as_str()),
            ("X-CSRF-Token", vic.csrf.as_str()),
        ],
        vec![
            ("Origin", "http://evil.example"),
            ("X-CSRF-Token", ann.csrf.as_str()),
        ],
        vec![("X-CSRF-Token", ann.csrf.as_str())],
    ] {
        let r = ann.call_with("POST", &feedback, body.clone(), &extra).await;
        assert_eq!(r.status, 403, "{extra:?}: {}", r.body);
        assert_eq!(r.body["error"], "csrf", "{extra:?}: {}", r.body);
    }
    let r = ann
        .call_with(
            "POST",
            &feedback,
            body,
            &[
                ("Sec-Fetch-Site", "same-origin"),
                ("X-CSRF-Token", ann.csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["alert"]["feedback"]["false_alarm"], false,
        "{}",
        r.body
    );

    // Role changes apply at once; the audit log has every change, never a password.
    let (st, u) = api(
        &node,
        "PATCH",
        "/api/v1/users/vic",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!((st, u["role"].as_str()), (200, Some("admin")), "{u}");
    let r = vic
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"name": "eve", "role": "viewer", "password": "eve's long password"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, audit) = api(&node, "GET", "/api/v1/audit?limit=100", None).await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("user."))
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("user.create", "user:vic"),
            ("user.role", "admin"),
            ("user.create", "admin"),
            ("user.create", "admin"),
        ],
        "{audit}"
    );
    assert!(!audit.to_string().contains("long password"));

    // Logout ends the session for good; a removed user's sessions end with it.
    let r = ann.call("DELETE", "/api/v1/session", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        r.set_cookies[0].starts_with("sentio_session=; Max-Age=0"),
        "{:?}",
        r.set_cookies
    );
    assert_eq!(ann.call("GET", "/api/v1/devices", None).await.status, 401);
    let (st, _) = api(&node, "DELETE", "/api/v1/users/vic", None).await;
    assert_eq!(st, 200);
    assert_eq!(vic.call("GET", "/api/v1/devices", None).await.status, 401);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_get_429_even_for_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let base = format!("http://{}", node.http_addr);
    assert_eq!(
        add_user(&node, "ann", "viewer", "ann's long password")
            .await
            .0,
        201
    );
    assert_eq!(
        add_user(&node, "bob", "viewer", "bob's long password")
            .await
            .0,
        201
    );
    let r = login_at(&base, "nobody", "wrong password", None).await;
    assert_eq!(
        r.status, 401,
        "an unknown name answers as a wrong password: {}",
        r.body
    );
    for i in 0..4 {
        let r = login_at(&base, "ann", &format!("wrong password {i}"), None).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Five failures from this address: even the right password waits, for any name.
    for (name, password) in [
        ("ann", "ann's long password"),
        ("bob", "bob's long password"),
    ] {
        let r = login_at(&base, name, password, None).await;
        assert_eq!(r.status, 429, "{name}: {}", r.body);
    }
    // The admin token is not a login and is not held back.
    assert_eq!(api(&node, "GET", "/api/v1/users", None).await.0, 200);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_cookie_is_host_prefixed_and_secure() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), |c| {
        c.mqtt.tls.enabled = true;
        c.http.tls.enabled = true;
    })
    .await;
    assert_eq!(
        add_user(&node, "ann", "admin", "ann's long password")
            .await
            .0,
        201
    );
    let (https, cert) = node.https.clone().expect("HTTPS listens");
    let pem = std::fs::read(&cert).unwrap();
    let base = format!("https://127.0.0.1:{}", https.port());
    let r = login_at(&base, "ann", "ann's long password", Some(pem.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (pair, attributes) = r.set_cookies[0].split_once("; ").unwrap();
    assert!(pair.starts_with("__Host-sentio_session="), "{pair}");
    assert_eq!(
        attributes,
        "Max-Age=43200; Path=/; HttpOnly; SameSite=Strict; Secure"
    );
    // The session works over HTTPS, and an admin user may do what the admin token does.
    let r = http_with(
        "POST",
        format!("{base}/api/v1/devices"),
        vec![
            ("Cookie".into(), pair.into()),
            ("Origin".into(), base.clone()),
            (
                "X-CSRF-Token".into(),
                r.body["csrf_token"].as_str().unwrap().into(),
            ),
        ],
        Some(json!({"id": "pump-1"})),
        Some(pem),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentio_user_add_creates_the_first_admin_in_a_data_directory() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let add_as = |name: &str, role_and_scope: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sentio"))
            .args(["user", "add", name])
            .args(role_and_scope)
            .arg("--data")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let add = |name: &str, password: &str| add_as(name, &["--role", "admin"], password);
    let short = add("root", "short\n");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let ok = add("root", "the first admin's password\n");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // An operator confined to a site; an admin cannot be.
    let scoped = ["--role", "operator", "--scope", "site=plant-a"];
    let otto = add_as("otto", &scoped, "otto's long password\n");
    assert!(
        otto.status.success(),
        "{}",
        String::from_utf8_lossy(&otto.stderr)
    );
    let scoped_admin = ["--role", "admin", "--scope", "site=plant-a"];
    let refused = add_as("ada", &scoped_admin, "ada's long password\n");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("an admin is not scoped"));

    let node = start(dir.path()).await;
    let (_, otto) = api(&node, "GET", "/api/v1/users/otto", None).await;
    assert_eq!(
        (&otto["role"], &otto["scope"]),
        (&json!("operator"), &json!({"site": "plant-a"}))
    );
    let base = format!("http://{}", node.http_addr);
    let root = login(&base, "root", "the first admin's password").await;
    let r = root
        .call("POST", "/api/v1/devices", Some(json!({"id": "pump-1"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, audit) = api(&node, "GET", "/api/v1/audit?action=user.create", None).await;
    assert_eq!(audit["entries"][0]["actor"], "cli", "{audit}");
    assert_eq!(
        audit["entries"][0]["detail"]["scope"],
        json!({"site": "plant-a"})
    );
    node.shutdown().await;
}
