//! Time as Sentio speaks it: milliseconds since the Unix epoch (`i64`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::CoreError;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Reads a time given as milliseconds since the epoch or as RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, CoreError> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| CoreError::InvalidTime(s.chars().take(64).collect()))
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC).
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Reads a duration such as `500ms`, `10s`, `1m`, `2h`, `7d` into milliseconds (> 0).
/// What the units of a duration ([`parse_duration_ms`]) are, for error messages: `m` is easily
/// meant as months.
pub const DURATION_UNITS: &str =
    "units: ms, s, m (minutes), h, d; months are not a unit: write 30d";

/// A duration in words, in the largest unit that holds it exactly: `1 minute`, `36 hours`,
/// `250 milliseconds`.
pub fn spell_duration_ms(ms: i64) -> String {
    let (n, unit) = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ]
    .into_iter()
    .find(|(w, _)| ms != 0 && ms % w == 0)
    .map_or((ms, "millisecond"), |(w, unit)| (ms / w, unit));
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

pub fn parse_duration_ms(s: &str) -> Result<i64, CoreError> {
    let s = s.trim();
    let err = || CoreError::InvalidDuration(s.chars().take(32).collect());
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| err())?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err()),
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1m").unwrap(), 60_000);
        assert_eq!(spell_duration_ms(60_000), "1 minute");
        assert_eq!(spell_duration_ms(36 * 3_600_000), "36 hours");
        assert_eq!(spell_duration_ms(1), "1 millisecond");
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("7d").unwrap(), 604_800_000);
        for bad in ["", "m", "1", "0s", "1y", "-1s", "99999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
