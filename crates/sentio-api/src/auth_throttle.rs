//! Slowing down credential guessing over HTTP: wrong admin (or API) tokens are counted per
//! address; past a number of failures in a window, the address is answered `429` with
//! `Retry-After` until its window ends, whatever it sends. Each address is logged at most once
//! per [`LOG_INTERVAL`], and the table of addresses is bounded. The same [`Throttle`], keyed
//! by address and by user name, counts wrong passwords at login ([`LoginThrottle`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sentio_store::user::MAX_NAME_LEN;

use crate::limits::HttpLimits;

/// How often at most one address's failures are logged.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most addresses tracked at once; beyond it the stalest entry makes room.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Failures of one key in its current window.
struct Entry {
    window_start: Instant,
    failures: u32,
    last_log: Option<Instant>,
    unlogged: u32,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            failures: 0,
            last_log: None,
            unlogged: 0,
        }
    }
}

/// Counts failed authentications per key and says when a key must wait.
pub struct Throttle<K> {
    max_failures: u32,
    window: Duration,
    /// What is logged for a key's failures (at most once per interval), or `None`: not logged.
    what: Option<&'static str>,
    entries: Mutex<HashMap<K, Entry>>,
    /// Wrong credentials presented (all addresses).
    pub failures: AtomicU64,
    /// Requests answered `429` because their address failed too often.
    pub throttled: AtomicU64,
}

/// Wrong admin or API tokens (and device secrets) per address.
pub type AuthThrottle = Throttle<IpAddr>;

impl AuthThrottle {
    /// A throttle with the limits' failures per window.
    pub fn new(limits: &HttpLimits) -> Self {
        Self::with(
            limits.auth_failures_per_window,
            limits.auth_failure_window_ms,
            Some("wrong admin or API token over HTTP"),
        )
    }
}

/// Wrong passwords at login, per address and per user name: either over its allowance gets
/// `429`.
pub struct LoginThrottle {
    /// Per address.
    pub by_address: Throttle<IpAddr>,
    /// Per user name (never logged: a name field sometimes holds a password).
    pub by_user: Throttle<String>,
}

impl LoginThrottle {
    /// A throttle with the limits' login failures per window.
    pub fn new(limits: &HttpLimits) -> Self {
        let (max, window) = (
            limits.login_failures_per_window,
            limits.login_failure_window_ms,
        );
        Self {
            by_address: Throttle::with(max, window, Some("wrong user name or password at login")),
            by_user: Throttle::with(max, window, None),
        }
    }

    /// `Err(seconds to wait)` when the address or the name has failed too often.
    pub fn check(&self, ip: Option<IpAddr>, name: &str) -> Result<(), u64> {
        if let Some(ip) = ip {
            self.by_address.check(&ip)?;
        }
        self.by_user.check(name)
    }

    /// Records a wrong password for `name` from `ip`. A name no user can have (longer than
    /// [`MAX_NAME_LEN`]) counts against the address only, so the table's keys stay small.
    pub fn failed(&self, ip: Option<IpAddr>, name: &str) {
        if let Some(ip) = ip {
            self.by_address.failed(ip);
        }
        if name.len() <= MAX_NAME_LEN {
            self.by_user.failed(name.to_string());
        }
    }
}

impl<K: Hash + Eq + Clone + std::fmt::Display> Throttle<K> {
    /// A throttle allowing `max_failures` (0: no limit) per window of `window_ms`.
    pub fn with(max_failures: u32, window_ms: u64, what: Option<&'static str>) -> Self {
        Self {
            max_failures,
            window: Duration::from_millis(window_ms.max(1)),
            what,
            entries: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    /// `Err(seconds to wait)` when `key` has failed too often in its current window.
    pub fn check<Q>(&self, key: &Q) -> Result<(), u64>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.max_failures == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = entries.get(key) else {
            return Ok(());
        };
        let ends = e.window_start + self.window;
        if e.failures < self.max_failures || now >= ends {
            return Ok(());
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        Err(ends.duration_since(now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Records a wrong credential from `key`, logging at most once per interval per key.
    pub fn failed(&self, key: K) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(&key) && entries.len() >= MAX_TRACKED_ADDRESSES {
            self.make_room(&mut entries, now);
        }
        let e = entries
            .entry(key.clone())
            .or_insert_with(|| Entry::new(now));
        if now.duration_since(e.window_start) >= self.window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.unlogged += 1;
        if let Some(what) = self.what
            && e.last_log
                .is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL)
        {
            tracing::warn!(
                peer = %key,
                failures_in_window = e.failures,
                since_last_line = e.unlogged,
                limit = self.max_failures,
                window_s = self.window.as_secs(),
                "{what}"
            );
            e.last_log = Some(now);
            e.unlogged = 0;
        }
    }

    /// Drops every entry whose window has ended; if none has, the one that started first.
    fn make_room(&self, entries: &mut HashMap<K, Entry>, now: Instant) {
        entries.retain(|_, e| now.duration_since(e.window_start) < self.window);
        if entries.len() >= MAX_TRACKED_ADDRESSES
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.window_start)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Prometheus text of the counters.
    pub fn metrics(&self) -> String {
        let rows = [
            (
                "sentio_http_auth_failures_total",
                "Wrong admin or API tokens presented over HTTP.",
                self.failures.load(Ordering::Relaxed),
            ),
            (
                "sentio_http_auth_throttled_total",
                "HTTP requests answered 429 because their address presented too many wrong tokens.",
                self.throttled.load(Ordering::Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max: u32, window_ms: u64) -> AuthThrottle {
        AuthThrottle::new(&HttpLimits {
            auth_failures_per_window: max,
            auth_failure_window_ms: window_ms,
            ..HttpLimits::default()
        })
    }

    #[test]
    fn an_address_waits_after_its_failures_and_others_do_not() {
        let t = throttle(3, 60_000);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(t.check(&a), Ok(()));
            t.failed(a);
        }
        let wait = t.check(&a).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(t.check(&b), Ok(()));
        assert_eq!(t.throttled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_login_waits_once_its_name_or_its_address_failed_too_often() {
        let t = LoginThrottle::new(&HttpLimits {
            login_failures_per_window: 2,
            ..HttpLimits::default()
        });
        let ip = |last: u8| Some(IpAddr::from([10, 0, 0, last]));
        // One name guessed from many addresses.
        t.failed(ip(1), "ann");
        t.failed(ip(2), "ann");
        assert!(t.check(ip(3), "ann").is_err());
        assert_eq!(t.check(ip(3), "bob"), Ok(()));
        // A name longer than any user's is not kept, and counts against its address.
        let long = "x".repeat(MAX_NAME_LEN + 1);
        t.failed(ip(6), &long);
        t.failed(ip(7), &long);
        assert_eq!(t.by_user.tracked(), 1);
        assert!(t.check(ip(6), "bob").is_ok());
        // Many names guessed from one address.
        t.failed(ip(4), "carl");
        t.failed(ip(4), "dora");
        assert!(t.check(ip(4), "bob").is_err());
        assert_eq!(t.check(ip(5), "bob"), Ok(()));
    }

    #[test]
    fn a_new_window_forgives_and_the_table_stays_bounded() {
        let t = throttle(1, 50);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        t.failed(a);
        assert!(t.check(&a).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.check(&a), Ok(()));
        let t = throttle(1, 60_000);
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 50) {
            t.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(t.tracked(), MAX_TRACKED_ADDRESSES);
    }
}
