//! The broker's wildcard index (`mqtt5::broker::wildcard_index`, SENTIO-PATCH): routing a
//! PUBLISH looks only at the wildcard filters whose literal prefix the topic has. Its tests
//! live here because mqtt5 is not a workspace member, so its own unit tests never ran in
//! `cargo test --workspace`: the index must find exactly the filters a full scan finds.

use mqtt5::broker::wildcard_index::{WildcardIndex, literal_prefix};
use mqtt5::validation::topic_matches_filter;

/// An index holding `filters`, each added as the router adds it (the map's keys, itself
/// included, as the live set).
fn index_of(filters: &[String]) -> WildcardIndex {
    let mut index = WildcardIndex::default();
    for (i, f) in filters.iter().enumerate() {
        index.add(f, filters[..=i].iter());
    }
    index
}

/// The filters among `filters` that match `topic`, found through the index, sorted.
fn found<'a>(index: &'a WildcardIndex, topic: &'a str) -> Vec<&'a str> {
    let mut found: Vec<&str> = index
        .candidates(topic)
        .map(String::as_str)
        .filter(|f| topic_matches_filter(topic, f))
        .collect();
    found.sort_unstable();
    found
}

/// The filters among `filters` that match `topic`, by checking each, sorted.
fn scanned<'a>(filters: &'a [String], topic: &str) -> Vec<&'a str> {
    let mut scanned: Vec<&str> = filters
        .iter()
        .map(String::as_str)
        .filter(|f| topic_matches_filter(topic, f))
        .collect();
    scanned.sort_unstable();
    scanned
}

/// Every string of 1 to `max_levels` levels drawn from `levels`, joined with `/`.
fn all_of(levels: &[&str], max_levels: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last: Vec<String> = levels.iter().map(|l| (*l).to_string()).collect();
    out.extend(last.iter().cloned());
    for _ in 1..max_levels {
        last = last
            .iter()
            .flat_map(|s| levels.iter().map(move |l| format!("{s}/{l}")))
            .collect();
        out.extend(last.iter().cloned());
    }
    out
}

#[test]
fn a_filters_literal_prefix_ends_before_its_first_wildcard_level() {
    assert_eq!(literal_prefix("a/b/#"), "a/b");
    assert_eq!(literal_prefix("a/+/c"), "a");
    assert_eq!(literal_prefix("+/x"), "");
    assert_eq!(literal_prefix("#"), "");
    assert_eq!(literal_prefix("a//+"), "a/");
    assert_eq!(literal_prefix("/+"), "");
}

#[test]
fn the_index_finds_exactly_the_filters_a_full_scan_finds() {
    let filters: Vec<String> = [
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
    ]
    .iter()
    .map(|f| (*f).to_string())
    .collect();
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
    let index = index_of(&filters);
    for topic in topics {
        assert_eq!(
            found(&index, topic),
            scanned(&filters, topic),
            "topic {topic:?}"
        );
    }
}

/// Every valid filter of up to three levels over `a`, `b`, the empty level, `+` and `#`
/// against every topic of up to four levels over `a`, `b` and the empty level.
#[test]
fn the_index_agrees_with_a_full_scan_on_every_small_filter_and_topic() {
    let filters: Vec<String> = all_of(&["a", "b", "", "+", "#"], 3)
        .into_iter()
        .filter(|f| mqtt5::validation::validate_topic_filter(f).is_ok())
        .collect();
    assert!(filters.len() > 100, "{} filters", filters.len());
    let index = index_of(&filters);
    for topic in all_of(&["a", "b", ""], 4) {
        assert_eq!(
            found(&index, &topic),
            scanned(&filters, &topic),
            "topic {topic:?}"
        );
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
    assert!(index.listed() <= 67, "listed {}", index.listed());
    assert_eq!(index.candidates("d/199/x").count(), 1);
    assert_eq!(index.candidates("d/5/x").count(), 0);
}
