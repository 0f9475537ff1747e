//! The table behind [`crate::clients::Clients`]: CONNECTs being admitted (`pending`), clients
//! whose connection is up (`live`), and what the connection quotas count, kept as running
//! totals so that admitting a CONNECT costs the same with ten clients or a hundred thousand.
//!
//! **Invariant:** `counts` always equals [`Counts::recount`] of the two maps: every client id
//! in either map is one connection, held by its live entry's identity and address if it has
//! one, else by its pending entry's. Every change to the maps goes through
//! [`ClientTable::change`], which moves the id's contribution from its old holder to its new.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sentio_store::TOKEN_USERNAME_PREFIX;

/// Pending entries older than this belong to connections that never came up.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(30);

pub(crate) fn is_token(user: &str) -> bool {
    user.starts_with(TOKEN_USERNAME_PREFIX)
}

/// An accepted CONNECT whose connection is not yet up.
pub(crate) struct Pending {
    pub username: Option<String>,
    pub protocol: &'static str,
    pub address: SocketAddr,
    pub at: Instant,
    /// The identity's revocation count when its credential was checked.
    pub revocations: u64,
}

/// A client whose connection is up.
pub(crate) struct Entry {
    pub username: Option<String>,
    pub protocol: &'static str,
    pub address: SocketAddr,
    pub connected_ms: i64,
    pub subscriptions: BTreeSet<String>,
    /// Connections under this client id that have not reported their disconnect yet (a
    /// takeover briefly has two).
    pub connections: u32,
}

/// The two maps a change may touch.
#[derive(Default)]
pub(crate) struct Maps {
    pub pending: HashMap<String, Pending>,
    pub live: HashMap<String, Entry>,
}

/// Who a client id's connection counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    username: Option<String>,
    ip: IpAddr,
}

impl Holder {
    pub(crate) fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }

    /// A token's connections are bounded by the token's quota, not the address's.
    pub(crate) fn counts_for_address(&self) -> bool {
        !self.username.as_deref().is_some_and(is_token)
    }
}

impl Maps {
    /// Who `client_id` counts against, if it is a connection at all.
    pub(crate) fn holder(&self, client_id: &str) -> Option<Holder> {
        let (username, address) = match self.live.get(client_id) {
            Some(e) => (&e.username, e.address),
            None => {
                let p = self.pending.get(client_id)?;
                (&p.username, p.address)
            }
        };
        Some(Holder {
            username: username.clone(),
            ip: address.ip(),
        })
    }
}

/// Connections by the node, identity and address, as the quotas count them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub node: usize,
    pub by_identity: HashMap<String, usize>,
    pub by_address: HashMap<IpAddr, usize>,
}

impl Counts {
    fn add(&mut self, h: &Holder) {
        self.node += 1;
        if let Some(u) = &h.username {
            *self.by_identity.entry(u.clone()).or_default() += 1;
        }
        if h.counts_for_address() {
            *self.by_address.entry(h.ip).or_default() += 1;
        }
    }

    fn remove(&mut self, h: &Holder) {
        self.node -= 1;
        if let Some(u) = &h.username {
            decrement(&mut self.by_identity, u);
        }
        if h.counts_for_address() {
            decrement(&mut self.by_address, &h.ip);
        }
    }

    pub(crate) fn identity(&self, username: &str) -> usize {
        self.by_identity.get(username).copied().unwrap_or(0)
    }

    pub(crate) fn address(&self, ip: IpAddr) -> usize {
        self.by_address.get(&ip).copied().unwrap_or(0)
    }

    /// The counts computed from scratch (what the running totals must equal).
    #[cfg(test)]
    pub(crate) fn recount(maps: &Maps) -> Counts {
        let mut c = Counts::default();
        let ids: BTreeSet<&String> = maps.live.keys().chain(maps.pending.keys()).collect();
        for id in ids {
            c.add(&maps.holder(id).expect("an id of the maps has a holder"));
        }
        c
    }
}

fn decrement<K>(map: &mut HashMap<K::Owned, usize>, key: &K)
where
    K: ToOwned + std::hash::Hash + Eq + ?Sized,
    K::Owned: std::hash::Hash + Eq + std::borrow::Borrow<K>,
{
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Pending entries, live entries and their counts; see the module doc.
#[derive(Default)]
pub(crate) struct ClientTable {
    maps: Maps,
    counts: Counts,
    /// Pending entries in admission order, to expire them without a scan: an item is stale
    /// when its id's pending entry is younger than it (admitted again) or gone.
    admitted: VecDeque<(Instant, String)>,
}

impl ClientTable {
    pub(crate) fn maps(&self) -> &Maps {
        &self.maps
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Applies `f` to the maps, changing only `client_id`'s entries, and keeps the counts.
    pub(crate) fn change<R>(&mut self, client_id: &str, f: impl FnOnce(&mut Maps) -> R) -> R {
        let before = self.maps.holder(client_id);
        let r = f(&mut self.maps);
        let after = self.maps.holder(client_id);
        if before != after {
            if let Some(h) = &before {
                self.counts.remove(h);
            }
            if let Some(h) = &after {
                self.counts.add(h);
            }
        }
        r
    }

    /// Records an admitted CONNECT.
    pub(crate) fn insert_pending(&mut self, client_id: &str, pending: Pending) {
        self.admitted.push_back((pending.at, client_id.to_string()));
        self.change(client_id, |m| {
            m.pending.insert(client_id.to_string(), pending);
        });
    }

    /// Drops pending entries admitted more than [`PENDING_TTL`] before `now`.
    pub(crate) fn expire_pending(&mut self, now: Instant) {
        while let Some((at, _)) = self.admitted.front() {
            if now.duration_since(*at) < PENDING_TTL {
                break;
            }
            let (at, id) = self.admitted.pop_front().expect("front exists");
            if self.maps.pending.get(&id).is_some_and(|p| p.at <= at) {
                self.change(&id, |m| m.pending.remove(&id));
            }
        }
    }

    /// Live entries, for what changes no count (subscriptions).
    pub(crate) fn live_mut(&mut self, client_id: &str) -> Option<&mut Entry> {
        self.maps.live.get_mut(client_id)
    }
}
