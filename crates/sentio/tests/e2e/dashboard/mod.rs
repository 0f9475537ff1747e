//! The dashboard in a real browser: Debian's `chromium` driven by `playwright-core` (the
//! scripts and their pinned packages, playwright-core and axe-core, are in `tests/browser/`,
//! installed by `scripts/services.sh`) against a whole node on port 0, plus the session routes
//! the page relies on. Without chromium or those packages a browser test prints SKIPPED,
//! except under `CI=true`, where that is a failure.
//!
//! - `session`: who-am-I after a reload, and the live stream on the session cookie;
//! - `pages`: sign in, fleet, device, alerts and (an operator's) rules pages, roles, live
//!   updates, a phone's width;
//! - `admin`: rules with replay (also on the device's charts), provisioning, users and
//!   tokens, the system page, a viewer;
//! - `band`: the AI engine's expected band and the forecast's interval on a device's chart;
//! - `accessibility`: axe-core on every page at two widths, as the admin and a viewer;
//! - `budgets`: 100 devices, 10,000 alerts and a month of one-second data, timed in the
//!   browser, and the page's and its JavaScript's bytes.

mod accessibility;
mod admin;
mod band;
mod budgets;
mod pages;
mod session;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sentio::node::Node;
use serde_json::json;

use crate::support::api;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the browser scripts and their `node_modules` are.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Where a test's screenshots go (kept after the run; printed).
fn shots_dir(test: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard-screenshots")
        .join(test)
}

/// A node declaring `pump.temp<=90`, with the rule `hot` (a pump's temp above 90): what
/// pump readings crossing 90 open a limit and a rule alert on.
async fn node_with_hot_pump_rule(dir: &Path) -> Node {
    let node = crate::support::start_with(dir, |c| {
        c.ai.limits = vec!["pump.temp<=90".parse().unwrap()];
    })
    .await;
    let rule = json!({"id": "hot", "name": "Hot pump", "selector": {"kind": "pump", "metrics": ["temp"]}, "condition": "temp > 90"});
    let (st, body) = api(&node, "POST", "/api/v1/rules", Some(rule)).await;
    assert_eq!(st, 201, "{body}");
    node
}

/// Adds a user with `role` through the API; returns its password.
async fn add_user(node: &Node, name: &str, role: &str) -> String {
    let password = format!("{name}-password-0123");
    let (st, body) = api(
        node,
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": role, "password": password})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    password
}

/// Why the browser tests cannot run here, if they cannot.
fn missing_browser() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is not installed"));
    }
    for package in ["playwright-core", "axe-core"] {
        if !browser_dir().join("node_modules").join(package).exists() {
            return Some(format!("{package} is not installed in tests/browser"));
        }
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node is not installed".into());
    }
    None
}

/// Runs `tests/browser/<script>` with `env` (and `CHROMIUM`); its output is printed (the
/// figures it measured). `false` when the browser is missing outside CI (SKIPPED); a failing
/// script fails the test with its output.
async fn run_browser(script: &str, env: &[(&str, String)]) -> bool {
    if let Some(why) = missing_browser() {
        let hint = "run `bash scripts/services.sh`";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the browser tests must run, but {why}; {hint}"
        );
        eprintln!("SKIPPED: {why} ({hint})");
        return false;
    }
    // One browser at a time: each is heavy on the shared cores, and the scripts time things.
    static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_BROWSER.lock().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script)
        .current_dir(browser_dir())
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 300 s"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    true
}
