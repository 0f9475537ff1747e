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

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// Wildcard filters by literal prefix.
#[derive(Debug, Default)]
pub(crate) struct WildcardIndex {
    by_prefix: HashMap<String, HashSet<String>>,
    listed: usize,
}

/// The text before the filter's first `+` or `#` level, without the `/` before it.
fn literal_prefix(filter: &str) -> &str {
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
    pub(crate) fn add<'a>(
        &mut self,
        filter: &str,
        live: impl ExactSizeIterator<Item = &'a String>,
    ) {
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
    pub(crate) fn candidates<'s>(
        &'s self,
        topic: &'s str,
    ) -> impl Iterator<Item = &'s String> + 's {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::topic_matches_filter;

    fn index_of(filters: &[&str]) -> (WildcardIndex, Vec<String>) {
        let mut index = WildcardIndex::default();
        let keys: Vec<String> = filters.iter().map(|f| (*f).to_string()).collect();
        for f in &keys {
            index.add(f, keys.iter());
        }
        (index, keys)
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("a/b/#"), "a/b");
        assert_eq!(literal_prefix("a/+/c"), "a");
        assert_eq!(literal_prefix("+/x"), "");
        assert_eq!(literal_prefix("#"), "");
        assert_eq!(literal_prefix("a//+"), "a/");
        assert_eq!(literal_prefix("/+"), "");
    }

    /// The index finds exactly the filters a full scan with `topic_matches_filter` finds.
    #[test]
    fn candidates_cover_every_matching_filter() {
        let filters = [
            "#",
            "+",
            "+/+",
            "/+",
            "a/#",
            "a/+",
            "a/b/#",
            "a/+/c",
            "a//+",
            "+/b/#",
            "a/b/c/#",
            "b/#",
            "$SYS/#",
            "+/b",
            "a/b/+/+",
            "devices/d1/commands/#",
            "devices/+/telemetry",
        ];
        let topics = [
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/d",
            "a//b",
            "/a",
            "a/",
            "b",
            "b/b",
            "$SYS/x",
            "x/b/c",
            "devices/d1/commands/1",
            "devices/d2/telemetry",
            "",
            "/",
        ];
        let (index, _) = index_of(&filters);
        for topic in topics {
            let mut found: Vec<&str> = index
                .candidates(topic)
                .map(String::as_str)
                .filter(|f| topic_matches_filter(topic, f))
                .collect();
            found.sort_unstable();
            let mut scanned: Vec<&str> = filters
                .iter()
                .copied()
                .filter(|f| topic_matches_filter(topic, f))
                .collect();
            scanned.sort_unstable();
            assert_eq!(found, scanned, "topic {topic:?}");
        }
    }

    #[test]
    fn stale_filters_are_dropped_when_they_outnumber_live_ones() {
        let mut index = WildcardIndex::default();
        for i in 0..200 {
            let filter = format!("d/{i}/#");
            let live = [filter.clone()];
            index.add(&filter, live.iter());
        }
        // Rebuilt whenever more than 2 × 1 + 64 are listed.
        assert!(index.listed <= 67, "listed {}", index.listed);
        assert_eq!(index.candidates("d/199/x").count(), 1);
    }
}
