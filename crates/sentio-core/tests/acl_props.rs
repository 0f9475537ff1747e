//! Property tests of the topic ACL used on the broker path (`sentio_core::acl`): wildcard
//! matching agrees with a reference written from the MQTT 5 specification (§4.7), `covers` is
//! sound (a subscription it allows never reaches a topic outside the ACL filter), and nothing
//! panics on arbitrary input.

use proptest::prelude::*;
use sentio_core::acl::{self, AclRule, Rights};

/// MQTT 5 §4.7 matching, written independently: levels compared one by one, `+` matches one
/// level, `#` the parent level and everything below, and a filter starting with a wildcard does
/// not match a topic starting with `$`.
fn reference_matches(filter: &str, topic: &str) -> bool {
    fn rec(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => f.len() == 1,
            (Some(&"+"), Some(_)) => rec(&f[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && rec(&f[1..], &t[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    rec(&f, &t)
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("".to_string()),
        Just("$SYS".to_string()),
        "[a-c]{1,3}",
    ]
}

fn topic() -> impl Strategy<Value = String> {
    proptest::collection::vec(level(), 1..6).prop_map(|l| l.join("/"))
}

/// A valid filter: levels, `+` anywhere, `#` only last.
fn filter() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(prop_oneof![level(), Just("+".to_string())], 0..5),
        any::<bool>(),
    )
        .prop_filter_map("empty filter", |(mut l, hash)| {
            if hash {
                l.push("#".to_string());
            }
            (!l.is_empty()).then(|| l.join("/"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn matching_agrees_with_the_specification(f in filter(), t in topic()) {
        prop_assert_eq!(acl::matches(&f, &t), reference_matches(&f, &t), "filter {:?} topic {:?}", f, t);
    }

    #[test]
    fn covers_never_lets_a_subscription_reach_outside_the_acl(a in filter(), s in filter(), t in topic()) {
        if acl::covers(&a, &s) && acl::matches(&s, &t) {
            prop_assert!(acl::matches(&a, &t), "acl {:?} covers {:?}, which matches {:?} outside it", a, s, t);
        }
    }

    /// A subscription allowed beside a deny entry never receives a topic the deny entry names.
    #[test]
    fn overlaps_misses_no_common_topic(a in filter(), b in filter(), t in topic()) {
        if acl::matches(&a, &t) && acl::matches(&b, &t) {
            prop_assert!(acl::overlaps(&a, &b), "{:?} and {:?} both match {:?}", a, b, t);
        }
        prop_assert_eq!(acl::overlaps(&a, &b), acl::overlaps(&b, &a));
    }

    #[test]
    fn shared_subscriptions_are_checked_as_their_filter(a in filter(), g in "[a-z]{1,5}", s in filter()) {
        let rules = [AclRule::allow(a.clone(), Rights::Subscribe)];
        prop_assert_eq!(
            acl::may_subscribe(&rules, &format!("$share/{g}/{s}")),
            acl::may_subscribe(&rules, &s)
        );
        // Subscribe rights never grant publishing.
        prop_assert!(!acl::may_publish(&rules, &s));
    }

    #[test]
    fn arbitrary_strings_never_panic(f in ".{0,80}", t in ".{0,80}") {
        let _ = acl::matches(&f, &t);
        let _ = acl::covers(&f, &t);
        let _ = acl::strip_share(&f);
        let _ = acl::validate_filter(&f);
    }
}
