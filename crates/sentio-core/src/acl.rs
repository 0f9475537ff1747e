//! Topic ACLs of API tokens: MQTT topic filters that allow or deny publish and/or subscribe
//! rights (a deny entry wins over any allow entry), and the MQTT wildcard rules (`+` one
//! level, `#` the rest, `$`-topics not matched by a leading wildcard, for publish and subscribe
//! checks alike, so a `$`-topic is reachable only through a filter that names its first level;
//! `$share/<group>/` stripped before a subscription is checked).

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Longest topic filter accepted in an ACL (MQTT's own limit is 65,535 bytes).
pub const MAX_FILTER_LEN: usize = 1024;

/// What a rule allows on the topics its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rights {
    /// PUBLISH to matching topics.
    Publish,
    /// SUBSCRIBE to filters inside the rule's filter.
    Subscribe,
    /// Both.
    Both,
}

impl Rights {
    /// Whether publishing is allowed.
    pub fn publish(self) -> bool {
        matches!(self, Self::Publish | Self::Both)
    }

    /// Whether subscribing is allowed.
    pub fn subscribe(self) -> bool {
        matches!(self, Self::Subscribe | Self::Both)
    }
}

/// One ACL entry: a topic filter and what it allows (or, with `deny`, refuses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// An MQTT topic filter (`+` and `#` allowed).
    pub filter: String,
    /// What the filter allows, or refuses when `deny` is set.
    pub rights: Rights,
    /// A deny entry: refuses `rights` on the filter's topics whatever the allow entries say.
    /// Absent in rules stored before deny entries existed, so they load as allow entries.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deny: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl AclRule {
    /// An entry allowing `rights` on `filter`.
    pub fn allow(filter: impl Into<String>, rights: Rights) -> Self {
        Self {
            filter: filter.into(),
            rights,
            deny: false,
        }
    }

    /// An entry refusing `rights` on `filter`.
    pub fn deny(filter: impl Into<String>, rights: Rights) -> Self {
        Self {
            filter: filter.into(),
            rights,
            deny: true,
        }
    }
}

/// Checks that `filter` is a valid MQTT topic filter for an ACL: not empty, at most
/// [`MAX_FILTER_LEN`] bytes, no NUL, `+` and `#` only as whole levels and `#` only last, and not
/// a `$share/...` subscription (an ACL names topics, not share groups).
pub fn validate_filter(filter: &str) -> Result<(), CoreError> {
    let bad = |why: &str| Err(CoreError::InvalidTopicFilter(filter.into(), why.into()));
    if filter.is_empty() {
        return bad("it is empty");
    }
    if filter.len() > MAX_FILTER_LEN {
        return bad("it is longer than 1024 bytes");
    }
    if filter.contains('\0') {
        return bad("it contains a NUL character");
    }
    if filter.starts_with("$share/") {
        return bad(
            "an ACL names topics; $share/<group>/ is stripped when a subscription is checked",
        );
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return bad("'#' must be a whole level and the last one");
        }
        if level.contains('+') && *level != "+" {
            return bad("'+' must be a whole level");
        }
    }
    Ok(())
}

/// Strips a shared-subscription prefix: `$share/<group>/<filter>` → `<filter>`.
pub fn strip_share(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, f)| f)
}

/// Whether the topic filter `filter` matches the topic name `topic` (MQTT 5 §4.7).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic that the subscription filter `sub` can match is matched by the ACL
/// filter `acl`, i.e. `sub` lies inside `acl`.
pub fn covers(acl: &str, sub: &str) -> bool {
    // A leading wildcard in the ACL does not reach `$` topics; a `$`-level in the subscription
    // then has to be named by the ACL itself.
    if sub.starts_with('$') && (acl.starts_with('+') || acl.starts_with('#')) {
        return false;
    }
    let mut a = acl.split('/');
    let mut s = sub.split('/');
    loop {
        match (a.next(), s.next()) {
            // `#` in the ACL covers the rest, including the parent level itself (`a/#` ⊇ `a`).
            (Some("#"), _) => return true,
            // `+` covers one level of anything but `#` (which spans several levels).
            (Some("+"), Some(sl)) if sl != "#" => {}
            (Some(al), Some(sl)) if al == sl && al != "+" && al != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic name is matched by both filters `a` and `b` (a subscription to one of
/// them could receive a message published under the other).
pub fn overlaps(a: &str, b: &str) -> bool {
    // A `$`-topic is matched by neither `#` nor `+` at the first level.
    let dollar = |f: &str| f.starts_with('$');
    let wild = |f: &str| f.starts_with('+') || f.starts_with('#');
    if (dollar(a) && wild(b)) || (dollar(b) && wild(a)) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(l), Some(r)) if l == r => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether the rules allow publishing to `topic`: an allow entry with publish rights matches
/// it and no deny entry with publish rights does.
pub fn may_publish(rules: &[AclRule], topic: &str) -> bool {
    let mut allowed = false;
    for r in rules.iter().filter(|r| r.rights.publish()) {
        if matches(&r.filter, topic) {
            if r.deny {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

/// Whether the rules allow subscribing to `filter` (a `$share/<group>/` prefix is stripped):
/// an allow entry with subscribe rights covers it, and it overlaps no deny entry with subscribe
/// rights (the subscription could otherwise receive a denied topic).
pub fn may_subscribe(rules: &[AclRule], filter: &str) -> bool {
    let filter = strip_share(filter);
    let mut allowed = false;
    for r in rules.iter().filter(|r| r.rights.subscribe()) {
        if r.deny {
            if overlaps(&r.filter, filter) {
                return false;
            }
        } else if covers(&r.filter, filter) {
            allowed = true;
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching() {
        for (f, t, ok) in [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a", false),
            ("a/+", "a/", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a/b", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("+/+", "/x", true),
            ("mqtt-load/#", "mqtt-load/run-1/t/3", true),
            ("mqtt-load/#", "mqtt-loadX/1", false),
        ] {
            assert_eq!(matches(f, t), ok, "{f} vs {t}");
        }
    }

    #[test]
    fn subscription_coverage() {
        for (acl, sub, ok) in [
            ("a/#", "a/#", true),
            ("a/#", "a", true),
            ("a/#", "a/+/c", true),
            ("a/#", "#", false),
            ("a/#", "+/b", false),
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/#", false),
            ("a/+", "a/b/c", false),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("#", "x/y/#", true),
            ("#", "$SYS/#", false),
            ("+/b", "x/b", true),
            ("+/b", "+/b", true),
            ("+/b", "#", false),
        ] {
            assert_eq!(covers(acl, sub), ok, "{acl} covers {sub}");
        }
    }

    #[test]
    fn rules_and_shared_subscriptions() {
        let rules = vec![
            AclRule::allow("in/#", Rights::Publish),
            AclRule::allow("out/+/x", Rights::Subscribe),
            AclRule::allow("both/#", Rights::Both),
        ];
        assert!(may_publish(&rules, "in/a/b"));
        assert!(!may_publish(&rules, "out/a/x"));
        assert!(may_publish(&rules, "both/1"));
        assert!(!may_subscribe(&rules, "in/#"));
        assert!(may_subscribe(&rules, "out/a/x"));
        assert!(may_subscribe(&rules, "$share/g1/out/+/x"));
        assert!(may_subscribe(&rules, "$share/g1/both/#"));
        assert!(!may_subscribe(&rules, "$share/g1/#"));
        assert!(!may_subscribe(&rules, "$share/g1"));
        assert!(!may_publish(&[], "in/a"));
    }

    #[test]
    fn filter_overlap() {
        for (a, b, ok) in [
            ("secret/#", "#", true),
            ("secret/#", "+/x", true),
            ("secret/#", "secret", true),
            ("secret/#", "public/#", false),
            ("secret/+", "secret/a/b", false),
            ("secret/+", "+/a", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a", "a/b", false),
            ("$SYS/#", "#", false),
            ("$SYS/#", "+/x", false),
            ("$SYS/x", "$SYS/+", true),
            ("#", "+", true),
        ] {
            assert_eq!(overlaps(a, b), ok, "{a} overlaps {b}");
            assert_eq!(overlaps(b, a), ok, "{b} overlaps {a}");
        }
    }

    /// Deny entries win: `#` except `secret/#`; a deny of one right leaves the other.
    #[test]
    fn deny_entries_win() {
        let rules = vec![
            AclRule::allow("#", Rights::Both),
            AclRule::deny("secret/#", Rights::Both),
            AclRule::deny("ro/#", Rights::Publish),
        ];
        assert!(may_publish(&rules, "a/b"));
        assert!(!may_publish(&rules, "secret/x"));
        assert!(!may_publish(&rules, "secret"));
        assert!(may_subscribe(&rules, "a/#"));
        assert!(!may_subscribe(&rules, "secret/x"));
        assert!(!may_subscribe(&rules, "#"), "# would receive secret/x");
        assert!(!may_subscribe(&rules, "+/x"), "+/x would receive secret/x");
        assert!(!may_subscribe(&rules, "$share/g/secret/#"));
        assert!(!may_publish(&rules, "ro/1"));
        assert!(may_subscribe(&rules, "ro/#"));
        // `#` does not reach `$`-topics; naming them does.
        assert!(!may_publish(&rules, "$SYS/x"));
        assert!(!may_subscribe(&rules, "$SYS/x"));
        let named = [rules.clone(), vec![AclRule::allow("$SYS/#", Rights::Both)]].concat();
        assert!(may_publish(&named, "$SYS/x"));
        assert!(may_subscribe(&named, "$SYS/#"));
        // A deny entry alone allows nothing.
        assert!(!may_publish(&[AclRule::deny("x", Rights::Both)], "y"));
    }

    /// Rules stored before deny entries existed have no `deny` field: they allow.
    #[test]
    fn stored_rules_without_deny_are_allow_entries() {
        let old: Vec<AclRule> =
            serde_json::from_str(r#"[{"filter":"a/#","rights":"both"}]"#).unwrap();
        assert_eq!(old, [AclRule::allow("a/#", Rights::Both)]);
        let text = serde_json::to_string(&[
            AclRule::allow("a/#", Rights::Both),
            AclRule::deny("a/s/#", Rights::Publish),
        ])
        .unwrap();
        assert_eq!(
            text,
            r#"[{"filter":"a/#","rights":"both"},{"filter":"a/s/#","rights":"publish","deny":true}]"#
        );
    }

    #[test]
    fn filter_validation() {
        for ok in ["a", "a/#", "#", "+", "a/+/b", "/", "$SYS/#"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "$share/g/a", "a\0b"] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
        assert!(validate_filter(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }
}
