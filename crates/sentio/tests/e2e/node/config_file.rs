//! The configuration file, as a user meets it through the real binary: `sentio serve --config
//! sentio.toml`, `<data>/sentio.toml` found by default, flags and environment over the file,
//! `sentio config check` naming the bad key, `sentio config print` hiding the admin token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use crate::support::{self, TOKEN};

fn sentio(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sentio"));
    c.args(args)
        .env_remove("SENTIO_ADMIN_TOKEN")
        .env_remove("SENTIO_DATA")
        .env_remove("SENTIO_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_names_the_bad_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentio.toml");
    let file_s = file.to_str().unwrap();
    let cases = [
        ("[http]\nlisten = \"127.0.0.1:0\"\n", true, "is valid"),
        (
            "[http]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlsiten = 1\n",
            false,
            "lsiten",
        ),
        ("[store]\ndisk_budget = \"ten\"\n", false, "line 2"),
        (
            "[mqtt.tls]\nenabled = false\nclient_ca = \"ca.pem\"\n",
            false,
            "mqtt.tls.client_ca",
        ),
    ];
    for (body, ok, want) in cases {
        std::fs::write(&file, body).unwrap();
        let out = sentio(&["config", "check", "--config", file_s])
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.success(), ok, "{body:?}: {said}");
        assert!(said.contains(want), "{body:?}: wanted {want:?} in {said}");
    }
    // A file that does not exist is an error, not the defaults.
    let out = sentio(&["config", "check", "--config", "/nonexistent/sentio.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("/nonexistent/sentio.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn print_shows_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Found without --config, in the data directory.
    std::fs::write(
        data.join("sentio.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:9000\"\nadmin_token = \"{TOKEN}\"\n[mqtt]\nmax_connections = 40\n[store.retention]\nraw = \"36h\"\n"
        ),
    )
    .unwrap();
    let out = sentio(&["config", "print", "--data", data.to_str().unwrap()])
        .env("SENTIO_MAX_CONNECTIONS", "50")
        .args(["--http", "127.0.0.1:9001"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(TOKEN), "the admin token is printed: {said}");
    assert!(said.contains("admin_token = \"<redacted>\""), "{said}");
    // The flag wins over the file, the environment over the file, the file over the default.
    assert!(said.contains("listen = \"127.0.0.1:9001\""), "{said}");
    assert!(said.contains("max_connections = 50"), "{said}");
    assert!(said.contains("raw = \"36h\""), "{said}");
    assert!(said.contains("listen = \"0.0.0.0:1883\""), "{said}");
}

#[test]
fn serve_runs_from_a_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let file = dir.path().join("sentio.toml");
    std::fs::write(
        &file,
        format!(
            "data = {data:?}\n\n[http]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\n[mqtt]\nlisten = \"127.0.0.1:0\"\n\n[mqtt.tls]\nenabled = false\n\n[store.retention]\nraw = \"36h\"\n"
        ),
    )
    .unwrap();
    let mut child = sentio(&["serve", "--config", file.to_str().unwrap()])
        .env("SENTIO_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sentio starts");
    let mut http = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.contains("Sentio is running") {
            http = line
                .split("http=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            break;
        }
    }
    let http = http.expect("'Sentio is running' with its HTTP address");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, retention) = rt.block_on(support::http(
        "GET",
        format!("http://{http}/api/v1/retention"),
        support::bearer(),
        None,
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    // The token and the retention came from the file; the data went where it said.
    assert_eq!(status, 200, "{retention}");
    assert_eq!(retention["global"], "36h", "{retention}");
    assert!(data.join("sentio.db").is_file());
    assert!(!data.join("admin.token").exists(), "a token was generated");
}

/// An admin token shorter than 32 characters is refused, naming the key, whether it comes
/// from the flag, the environment or a token file.
#[test]
fn a_short_admin_token_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let short = "only-26-characters-long-xx";
    assert_eq!(short.len(), 26);
    let flag = sentio(&["config", "check", "--data", data, "--admin-token", short])
        .output()
        .unwrap();
    assert!(!flag.status.success(), "{}", text(&flag));
    assert!(text(&flag).contains("http.admin_token"), "{}", text(&flag));
    assert!(text(&flag).contains("at least 32"), "{}", text(&flag));
    let env = sentio(&["config", "check", "--data", data])
        .env("SENTIO_ADMIN_TOKEN", short)
        .output()
        .unwrap();
    assert!(!env.status.success(), "{}", text(&env));
    assert!(text(&env).contains("http.admin_token"), "{}", text(&env));

    let file = dir.path().join("short.token");
    std::fs::write(&file, format!("{short}\n")).unwrap();
    let served = sentio(&[
        "serve",
        "--data",
        data,
        "--http",
        "127.0.0.1:0",
        "--mqtt",
        "127.0.0.1:0",
        "--no-mqtt-tls",
        "--admin-token-file",
        file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!served.status.success(), "{}", text(&served));
    assert!(
        text(&served).contains("http.admin_token_file") && text(&served).contains("at least 32"),
        "{}",
        text(&served)
    );
}

/// `--admin-token-file` keeps the token off the command line; plain HTTP on a non-loopback
/// address is warned about at start.
#[test]
fn the_admin_token_comes_from_a_file_and_plaintext_http_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("admin.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mut child = sentio(&[
        "serve",
        "--http",
        "0.0.0.0:0",
        "--mqtt",
        "127.0.0.1:0",
        "--no-mqtt-tls",
        "--admin-token-file",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
    .env("SENTIO_LOG", "info")
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN));
    let mut log = Vec::new();
    let mut port = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        log.push(line.clone());
        if line.contains("Sentio is running") {
            port = line
                .split("http=0.0.0.0:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            break;
        }
    }
    let port = port.unwrap_or_else(|| panic!("no 'Sentio is running' line: {log:?}"));
    // Keep reading, so the node's log never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(support::http(
        "GET",
        format!("http://127.0.0.1:{port}/api/v1/devices"),
        support::bearer(),
        None,
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("plaintext") && l.contains("non-loopback")),
        "no plaintext warning: {log:#?}"
    );
    assert!(!data.join("admin.token").exists(), "a token was generated");
}
