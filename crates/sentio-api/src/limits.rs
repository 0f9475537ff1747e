//! `HttpLimits`: how long the HTTP listener waits for a client and how many clients it holds,
//! so that sockets opened without credentials cannot take the node's file descriptors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default time a client has to send a request's headers (also the idle time allowed between
/// requests on a kept-alive connection): 10 s.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default time a client has to send a request's body once its headers arrived: 30 s.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Connection cap used when the descriptor limit cannot be read.
pub const FALLBACK_MAX_CONNECTIONS: usize = 256;
/// Default wrong tokens one address may present in a window before it must wait.
pub const DEFAULT_AUTH_FAILURES_PER_WINDOW: u32 = 10;
/// Default window of the wrong-token count: 60 s.
pub const DEFAULT_AUTH_FAILURE_WINDOW_MS: u64 = 60_000;
/// Default wrong passwords at login per address and per user name in a window.
pub const DEFAULT_LOGIN_FAILURES_PER_WINDOW: u32 = 5;
/// Default window of the login failures: 5 minutes.
pub const DEFAULT_LOGIN_FAILURE_WINDOW_MS: u64 = 300_000;
/// Default lifetime of a browser session: 12 hours.
pub const DEFAULT_SESSION_TTL_MS: u64 = 12 * 3_600_000;
/// Default most simultaneous connections from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 128;

/// Limits of the HTTP listener (`[http.limits]` in `sentio.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Milliseconds a client has to send a request's headers, and the longest idle time
    /// between requests on a kept-alive connection; then the connection is closed.
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body once its headers arrived;
    /// then the request fails and the connection is closed.
    pub body_timeout_ms: u64,
    /// Most simultaneous HTTP connections (0: a quarter of the process's descriptor limit,
    /// read from `/proc/self/limits`, else [`FALLBACK_MAX_CONNECTIONS`]). Beyond it a new
    /// connection gets `503` and is closed.
    pub max_connections: usize,
    /// Most simultaneous HTTP connections from one IP address (0 = only `max_connections`).
    pub max_connections_per_address: usize,
    /// Wrong admin or API tokens one IP address may present per window; then it is answered
    /// `429` with `Retry-After` until the window ends (0 = no limit).
    pub auth_failures_per_window: u32,
    /// The window of `auth_failures_per_window`, in milliseconds.
    pub auth_failure_window_ms: u64,
    /// Wrong passwords at login per IP address and per user name in a window; then either is
    /// answered `429` until the window ends (0 = no limit).
    pub login_failures_per_window: u32,
    /// The window of `login_failures_per_window`, in milliseconds.
    pub login_failure_window_ms: u64,
    /// How long a browser session lasts after login, in milliseconds.
    pub session_ttl_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            body_timeout_ms: DEFAULT_BODY_TIMEOUT_MS,
            max_connections: 0,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            auth_failures_per_window: DEFAULT_AUTH_FAILURES_PER_WINDOW,
            auth_failure_window_ms: DEFAULT_AUTH_FAILURE_WINDOW_MS,
            login_failures_per_window: DEFAULT_LOGIN_FAILURES_PER_WINDOW,
            login_failure_window_ms: DEFAULT_LOGIN_FAILURE_WINDOW_MS,
            session_ttl_ms: DEFAULT_SESSION_TTL_MS,
        }
    }
}

impl HttpLimits {
    /// The header read timeout.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    /// The body read timeout.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }

    /// The connection cap in force: the configured one, or one derived from the descriptor
    /// limit, leaving three quarters of the descriptors to MQTT, the store and the rest.
    pub fn effective_max_connections(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        open_files_limit()
            .map(|n| (n / 4).clamp(4, 4096))
            .unwrap_or(FALLBACK_MAX_CONNECTIONS)
    }
}

/// The soft limit of open files of this process, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&text)
}

fn parse_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_descriptor_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            256                  524288               files\n";
        assert_eq!(parse_open_files(text), Some(256));
        assert_eq!(
            parse_open_files("Max open files unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn the_default_cap_stays_below_the_descriptor_limit() {
        let cap = HttpLimits::default().effective_max_connections();
        if let Some(n) = open_files_limit() {
            assert!(cap < n, "cap {cap} with {n} descriptors");
        }
        assert_eq!(
            HttpLimits {
                max_connections: 7,
                ..HttpLimits::default()
            }
            .effective_max_connections(),
            7
        );
    }
}
