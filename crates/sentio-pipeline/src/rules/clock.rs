//! The time of day rules read: `hour` (0-23), `minute` (0-59) and `weekday` (1 = Monday ...
//! 7 = Sunday, ISO 8601), of the judged point's timestamp (data time, never the wall clock, so
//! a replay reads the time each point had) in the node's zone ([`RuleClock`], `rules.time_zone`,
//! an IANA name such as `Europe/Berlin`, UTC by default; summer time included).

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

/// A time-of-day variable a rule may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockField {
    /// `hour`: 0-23.
    Hour,
    /// `minute`: 0-59.
    Minute,
    /// `weekday`: 1 (Monday) to 7 (Sunday).
    Weekday,
}

impl ClockField {
    /// Every field, in the order of [`TimeOfDay::values`].
    pub const ALL: [ClockField; 3] = [Self::Hour, Self::Minute, Self::Weekday];

    /// Its variable's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Minute => "minute",
            Self::Weekday => "weekday",
        }
    }

    /// The field named `name`, if one is.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A point's local time, as rules read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0-23.
    pub hour: i64,
    /// 0-59.
    pub minute: i64,
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: i64,
}

impl TimeOfDay {
    /// The value of `field`.
    pub fn get(&self, field: ClockField) -> i64 {
        match field {
            ClockField::Hour => self.hour,
            ClockField::Minute => self.minute,
            ClockField::Weekday => self.weekday,
        }
    }
}

/// The zone rules read the time of day in. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleClock(Tz);

impl Default for RuleClock {
    fn default() -> Self {
        Self(Tz::UTC)
    }
}

impl RuleClock {
    /// The zone named `name` (IANA, e.g. `Europe/Berlin`, or `UTC`).
    pub fn parse(name: &str) -> Result<Self, String> {
        name.parse::<Tz>().map(Self).map_err(|_| {
            format!("{name:?} is not a time zone (an IANA name such as Europe/Berlin, or UTC)")
        })
    }

    /// The zone's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The local time of `ts_ms` (ms since the epoch); out of range: the epoch's.
    pub fn at(&self, ts_ms: i64) -> TimeOfDay {
        let t = self
            .0
            .timestamp_millis_opt(ts_ms)
            .single()
            .unwrap_or_else(|| self.0.timestamp_millis_opt(0).single().expect("the epoch"));
        TimeOfDay {
            hour: i64::from(t.hour()),
            minute: i64::from(t.minute()),
            weekday: i64::from(t.weekday().number_from_monday()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_of_day_is_read_in_the_zone_with_summer_time() {
        // 2026-12-07 (a Monday) 05:30 UTC.
        let winter = 1_796_621_400_000;
        let utc = RuleClock::default().at(winter);
        assert_eq!((utc.hour, utc.minute, utc.weekday), (5, 30, 1));
        let berlin = RuleClock::parse("Europe/Berlin").unwrap();
        assert_eq!(berlin.at(winter).hour, 6, "UTC+1 in winter");
        // 2026-07-06 (a Monday) 05:30 UTC: summer time, UTC+2.
        let summer = 1_783_315_800_000;
        assert_eq!((berlin.at(summer).hour, berlin.at(summer).weekday), (7, 1));
        // 2026-12-06 23:30 UTC is already Monday in Berlin.
        let late_sunday = winter - 6 * 3_600_000;
        assert_eq!(RuleClock::default().at(late_sunday).weekday, 7);
        assert_eq!(berlin.at(late_sunday).weekday, 1);
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert!(RuleClock::parse("Mars/Olympus").is_err());
        assert_eq!(ClockField::named("weekday"), Some(ClockField::Weekday));
        assert_eq!(ClockField::named("day"), None);
    }
}
