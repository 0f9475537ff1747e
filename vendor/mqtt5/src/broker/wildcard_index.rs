//! SENTIO-PATCH: the router's wildcard filters indexed by their literal prefix, so that routing
//! a PUBLISH looks at the filters that can match its topic instead of every wildcard filter
//! of the broker. Upstream matched the topic against each wildcard filter in turn (two `Vec`s
//! and a split of both strings per filter): with 300 devices each subscribed to its own
//! `devices/<id>/…/#`, that was about a third of the broker's CPU per PUBLISH.
//!
//! A filter's literal prefix is the text before its first wildcard level (`a/b/#` → `a/b`,
//! `a/+/c` → `a`, `+/x` and `#` → ``). A topic can match a filter only if the filter's prefix is
//! one of the topic's level prefixes (``, `a`, `a/b`, …, the whole topic), so a lookup per
//! level finds every candidate; the caller still checks each with `topic_matches_filter`.
//!
//! The index only grows with the router's map: a filter is added when its key is created
//! and is not removed with it (removals happen in many places of the router); the caller
//! skips a listed filter that is no longer in the map, and [`WildcardIndex::add`] rebuilds the
//! index from the map's keys once stale entries outnumber live ones.
//!
//! Public but hidden: its tests are in Sentio's `sentio-broker` (`wildcard_index.rs`), which
//! `cargo test --workspace` runs (mqtt5 is not a workspace member).

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// Wildcard filters by literal prefix.
#[derive(Debug, Default)]
pub struct WildcardIndex {
    by_prefix: HashMap<String, HashSet<String>>,
    listed: usize,
}

/// The text before the filter's first `+` or `#` level, without the `/` before it.
#[must_use]
pub fn literal_prefix(filter: &str) -> &str {
    let mut start = 0;
    for level in filter.split('/') {
        if level == "+" || level == "#" {
            return if start == 0 { "" } else { &filter[..start - 1] };
        }
        start += level.len() + 1;
    }
    filter
}

impl WildcardIndex {
    /// Lists a filter whose key was just created in the router's wildcard map; rebuilds from
    /// `live` (the map's keys, the new one included) once most listed filters are stale.
    pub fn add<'a>(&mut self, filter: &str, live: impl ExactSizeIterator<Item = &'a String>) {
        let live_count = live.len();
        if self.listed > 2 * live_count + 64 {
            self.by_prefix = HashMap::new();
            self.listed = 0;
            for key in live {
                self.insert(key);
            }
        }
        self.insert(filter);
    }

    /// How many filters are listed, stale ones included.
    #[must_use]
    pub fn listed(&self) -> usize {
        self.listed
    }

    fn insert(&mut self, filter: &str) {
        let set = self
            .by_prefix
            .entry(literal_prefix(filter).to_string())
            .or_insert_with(HashSet::new);
        if !set.contains(filter) {
            set.insert(filter.to_string());
            self.listed += 1;
        }
    }

    /// Every listed filter whose literal prefix is a level prefix of `topic`, each once.
    pub fn candidates<'s>(&'s self, topic: &'s str) -> impl Iterator<Item = &'s String> + 's {
        let ends = std::iter::once(0)
            .chain(
                topic
                    .bytes()
                    .enumerate()
                    .filter(|&(i, b)| b == b'/' && i > 0)
                    .map(|(i, _)| i),
            )
            .chain((!topic.is_empty()).then_some(topic.len()));
        ends.filter_map(move |end| self.by_prefix.get(&topic[..end]))
            .flatten()
    }
}
