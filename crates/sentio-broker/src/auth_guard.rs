//! Failed CONNECTs (wrong secret or password, unknown device or token): counted per address,
//! logged at most once per interval per address, and slowed: after
//! `mqtt.limits.max_auth_failures` failures from one address within `auth_backoff_s` seconds,
//! every CONNECT from that address is refused for `auth_backoff_s` seconds without its
//! credential being checked (CONNACK 0x97; 3.1.1: 0x03). So a guesser gets at most that many
//! tries per address per interval. A registered device's failures are counted on the device
//! (`refusals.rs`), which is never locked: locking a device id would let anyone lock it out.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses; when full, the one quiet for longest
//! goes first. IPv6 addresses are counted by their /64, the block one host usually holds.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default failures from one address within the back-off interval before it is refused.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 10;
/// Default back-off interval, in seconds.
pub const DEFAULT_AUTH_BACKOFF_S: u32 = 60;
/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 10_000;
/// At most one warning per address in this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The address a failure is counted under: the IP, or an IPv6 address's /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One address's recent failures.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
    warned_at: Option<Instant>,
    /// Failures and refusals since the last warning.
    unwarned: u64,
}

/// A map that keeps at most [`MAX_TRACKED`] entries, dropping the one touched longest ago.
struct Bounded<K, V> {
    map: HashMap<K, V>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    fn entry(&mut self, key: K, last: impl Fn(&V) -> Instant, new: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) && self.map.len() >= MAX_TRACKED {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, v)| last(v))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        self.map.entry(key).or_insert_with(new)
    }
}

/// What a failure or a refusal should log, if anything (at most once per interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// Failures and refusals from this address that this line stands for.
    pub events: u64,
    /// Failures from this address in the current interval.
    pub failures: u32,
    /// Whether the address is now refused, and for how long.
    pub blocked_for: Option<Duration>,
}

/// Counts failed CONNECTs and refuses addresses that fail too often.
pub(crate) struct AuthGuard {
    max_failures: u32,
    backoff: Duration,
    addresses: Mutex<Bounded<IpAddr, Strikes>>,
    /// CONNECTs refused because their address was backing off.
    pub refused: AtomicU64,
}

impl AuthGuard {
    /// `max_failures` per address within `backoff_s` seconds (0: never refused).
    pub(crate) fn new(max_failures: u32, backoff_s: u32) -> Self {
        Self {
            max_failures,
            backoff: Duration::from_secs(u64::from(backoff_s.max(1))),
            addresses: Mutex::new(Bounded::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// Before a credential is checked: `Err` with the time left if `ip` is backing off (the
    /// refusal is counted; `Some` report when it should be logged).
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), (Duration, Option<Report>)> {
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = addresses.map.get_mut(&address_key(ip)) else {
            return Ok(());
        };
        let Some(until) = s.blocked_until.filter(|u| *u > now) else {
            return Ok(());
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        s.unwarned += 1;
        let report = Self::due(s, now).then(|| Report {
            events: std::mem::take(&mut s.unwarned),
            failures: s.failures,
            blocked_for: Some(until - now),
        });
        Err((until - now, report))
    }

    /// A CONNECT from `ip` failed. Returns what to log, if it is time to.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> Option<Report> {
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let s = addresses.entry(
            address_key(ip),
            |s| s.last,
            || Strikes {
                failures: 0,
                last: now,
                blocked_until: None,
                warned_at: None,
                unwarned: 0,
            },
        );
        if now.duration_since(s.last) >= self.backoff {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        s.unwarned += 1;
        if self.max_failures > 0 && s.failures >= self.max_failures {
            s.blocked_until = Some(now + self.backoff);
            s.failures = 0;
        }
        Self::due(s, now).then(|| Report {
            events: std::mem::take(&mut s.unwarned),
            failures: s.failures,
            blocked_for: s.blocked_until.filter(|u| *u > now).map(|u| u - now),
        })
    }

    /// Whether this address may log now (at most once per interval).
    fn due(s: &mut Strikes, now: Instant) -> bool {
        if s.warned_at
            .is_some_and(|t| now.duration_since(t) < WARN_INTERVAL)
        {
            return false;
        }
        s.warned_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_after_its_failures_for_the_backoff_then_admitted() {
        let g = AuthGuard::new(3, 60);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert!(g.failed(a, t0).is_some(), "the first failure logs");
        assert!(g.failed(a, t0).is_none(), "once per interval");
        assert!(g.check(a, t0).is_ok());
        g.failed(a, t0);
        let (left, _) = g.check(a, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(left, Duration::from_secs(59));
        // Another address is not affected; nor is an IPv6 neighbour of another /64.
        assert!(g.check(ip("10.0.0.2"), t0).is_ok());
        assert_eq!(g.refused.load(Ordering::Relaxed), 1);
        assert!(g.check(a, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn failures_spread_beyond_the_interval_do_not_add_up() {
        let g = AuthGuard::new(3, 60);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        for i in 0..10 {
            g.failed(a, t0 + Duration::from_secs(61 * i));
            assert!(g.check(a, t0 + Duration::from_secs(61 * i)).is_ok());
        }
    }

    #[test]
    fn ipv6_is_counted_by_its_64_and_memory_is_bounded() {
        let g = AuthGuard::new(2, 60);
        let t0 = Instant::now();
        g.failed(ip("2001:db8::1"), t0);
        g.failed(ip("2001:db8::2"), t0);
        assert!(g.check(ip("2001:db8::3"), t0).is_err());
        assert!(g.check(ip("2001:db8:0:1::1"), t0).is_ok());
        for i in 0..(MAX_TRACKED as u32 + 50) {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            g.failed(a, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(g.addresses.lock().unwrap().map.len(), MAX_TRACKED);
        // The quietest went first: the blocked /64 (failed at t0) is forgotten.
        assert!(g.check(ip("2001:db8::3"), t0).is_ok());
    }
}
