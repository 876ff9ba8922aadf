//! The three aggregation windows of spec §3 and the minute counts are attributed to. All in UTC.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A window of one time-series document: which period it covers and what its slots are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WindowType {
    /// One hour, slots `0..=59` (minute of the hour).
    Hours,
    /// One day, slots `0..=23` (hour of the day).
    Days,
    /// One month, slots `1..=N` (day of the month, N = the month's length).
    Months,
}

impl WindowType {
    pub const ALL: [WindowType; 3] = [WindowType::Hours, WindowType::Days, WindowType::Months];

    /// The `windowType` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowType::Hours => "HOURS",
            WindowType::Days => "DAYS",
            WindowType::Months => "MONTHS",
        }
    }

    /// The `windowFrecuencyUnit` spelling: the unit of one slot.
    pub fn frecuency_unit(self) -> &'static str {
        match self {
            WindowType::Hours => "MINUTES",
            WindowType::Days => "HOURS",
            WindowType::Months => "DAYS",
        }
    }

    /// Start of the window holding `t`: top of the hour, 00:00 of the day, or the 1st at 00:00.
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = t.date_naive().and_time(NaiveTime::MIN).and_utc();
        match self {
            // Within the same day, so the addition cannot leave chrono's range.
            WindowType::Hours => midnight + TimeDelta::hours(i64::from(t.hour())),
            WindowType::Days => midnight,
            WindowType::Months => {
                midnight - TimeDelta::days(i64::from(t.day0())) // back to the 1st, same month
            }
        }
    }

    /// Slot of `t` in its window: minute (0..=59), hour (0..=23) or day of month (1..=31).
    pub fn slot(self, t: DateTime<Utc>) -> u32 {
        match self {
            WindowType::Hours => t.minute(),
            WindowType::Days => t.hour(),
            WindowType::Months => t.day(),
        }
    }

    /// Index of `t`'s slot among the window's slot keys: [`WindowType::slot`] less the first key.
    pub fn slot_index(self, t: DateTime<Utc>) -> usize {
        match self {
            WindowType::Hours => t.minute() as usize,
            WindowType::Days => t.hour() as usize,
            WindowType::Months => t.day0() as usize,
        }
    }

    /// The slot keys of the window starting at `start`, in ascending order. A month window has
    /// one key per day of its own month (28, 29, 30 or 31).
    pub fn slot_keys(self, start: DateTime<Utc>) -> RangeInclusive<u32> {
        match self {
            WindowType::Hours => 0..=59,
            WindowType::Days => 0..=23,
            WindowType::Months => 1..=u32::from(start.num_days_in_month()),
        }
    }

    /// Number of slots of the window starting at `start`.
    pub fn slot_count(self, start: DateTime<Utc>) -> usize {
        let keys = self.slot_keys(start);
        (keys.end() - keys.start() + 1) as usize
    }

    /// The instant a slot stands for (spec §9): `start` plus `slot` minutes/hours, or plus
    /// `slot - 1` days. `None` when the slot is not one of the window's keys.
    pub fn slot_time(self, start: DateTime<Utc>, slot: u32) -> Option<DateTime<Utc>> {
        let start = self.start(start);
        if !self.slot_keys(start).contains(&slot) {
            return None;
        }
        let offset = match self {
            WindowType::Hours => TimeDelta::minutes(i64::from(slot)),
            WindowType::Days => TimeDelta::hours(i64::from(slot)),
            WindowType::Months => TimeDelta::days(i64::from(slot - 1)),
        };
        start.checked_add_signed(offset)
    }

    /// Start of the window after the one starting at `start`; `None` past chrono's range.
    pub fn next_start(self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.shift(start, 1, true)
    }

    /// Start of the window `n` windows before the one holding `t`; `None` before chrono's range.
    pub fn windows_back(self, t: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
        self.shift(t, n, false)
    }

    fn shift(self, t: DateTime<Utc>, n: u32, forward: bool) -> Option<DateTime<Utc>> {
        let start = self.start(t);
        let delta = match self {
            WindowType::Hours => TimeDelta::hours(i64::from(n)),
            WindowType::Days => TimeDelta::days(i64::from(n)),
            WindowType::Months if forward => return start.checked_add_months(Months::new(n)),
            WindowType::Months => return start.checked_sub_months(Months::new(n)),
        };
        if forward {
            start.checked_add_signed(delta)
        } else {
            start.checked_sub_signed(delta)
        }
    }
}

impl fmt::Display for WindowType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WindowType {
    type Err = UnknownWindow;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WindowType::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWindow(s.to_owned()))
    }
}

/// A window name that is not `HOURS`, `DAYS` or `MONTHS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window type {0:?}: expected HOURS, DAYS or MONTHS")]
pub struct UnknownWindow(pub String);

/// A UTC minute, the unit counts are attributed to. Built only from a valid instant, so it always
/// converts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Minute(i64);

impl Minute {
    /// The minute `t` falls in.
    pub fn of(t: DateTime<Utc>) -> Minute {
        Minute(t.timestamp().div_euclid(60))
    }

    /// The first instant of the minute.
    pub fn start(self) -> DateTime<Utc> {
        // `self.0` came from a valid DateTime and chrono's range starts on a whole minute, so the
        // truncated instant is valid too.
        DateTime::from_timestamp(self.0 * 60, 0).expect("a Minute is built from a valid instant")
    }
}

impl fmt::Display for Minute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start().format("%Y-%m-%dT%H:%MZ"))
    }
}

/// `2024-05-10T14:00:00.000Z`, the date format of the documents and of query points.
pub fn format_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    // Test helper: a malformed literal is a bug in the test itself.
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamps are valid RFC 3339")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_millisecond_of_an_hour_stays_in_that_hour() {
        let t = utc("2024-05-10T14:59:59.999Z");
        assert_eq!(WindowType::Hours.start(t), utc("2024-05-10T14:00:00Z"));
        assert_eq!(WindowType::Hours.slot(t), 59);
        assert_eq!(WindowType::Days.slot(t), 14);
        assert_eq!(Minute::of(t).start(), utc("2024-05-10T14:59:00Z"));
    }

    #[test]
    fn top_of_the_hour_opens_a_new_hour_window_at_slot_zero() {
        let t = utc("2024-05-10T15:00:00Z");
        assert_eq!(WindowType::Hours.start(t), t);
        assert_eq!(WindowType::Hours.slot(t), 0);
        assert_eq!(WindowType::Days.slot(t), 15);
        assert_eq!(WindowType::Days.start(t), utc("2024-05-10T00:00:00Z"));
    }

    #[test]
    fn midnight_belongs_to_the_new_day() {
        let before = utc("2024-05-10T23:59:59.999Z");
        let at = utc("2024-05-11T00:00:00Z");
        assert_eq!(WindowType::Days.start(before), utc("2024-05-10T00:00:00Z"));
        assert_eq!(WindowType::Days.slot(before), 23);
        assert_eq!(WindowType::Days.start(at), at);
        assert_eq!(WindowType::Days.slot(at), 0);
        assert_eq!(WindowType::Months.slot(at), 11);
    }

    #[test]
    fn month_end_and_new_month_fall_in_different_month_windows() {
        let before = utc("2024-04-30T23:59:59.999Z");
        let at = utc("2024-05-01T00:00:00Z");
        assert_eq!(
            WindowType::Months.start(before),
            utc("2024-04-01T00:00:00Z")
        );
        assert_eq!(WindowType::Months.slot(before), 30);
        assert_eq!(WindowType::Months.start(at), at);
        assert_eq!(WindowType::Months.slot(at), 1);
        let new_year = utc("2025-01-01T00:00:00Z");
        assert_eq!(
            WindowType::Months.start(utc("2024-12-31T23:59:59Z")),
            utc("2024-12-01T00:00:00Z")
        );
        assert_eq!(WindowType::Months.start(new_year), new_year);
    }

    #[test]
    fn leap_day_2024_is_slot_29_of_a_29_day_february() {
        let t = utc("2024-02-29T12:00:00Z");
        let start = WindowType::Months.start(t);
        assert_eq!(start, utc("2024-02-01T00:00:00Z"));
        assert_eq!(WindowType::Months.slot(t), 29);
        assert_eq!(WindowType::Months.slot_keys(start), 1..=29);
        assert_eq!(
            WindowType::Months.start(utc("2024-03-01T00:00:00Z")),
            utc("2024-03-01T00:00:00Z")
        );
    }

    #[test]
    fn february_2023_has_28_slots_and_its_last_day_is_slot_28() {
        let t = utc("2023-02-28T23:59:59.999Z");
        let start = WindowType::Months.start(t);
        assert_eq!(start, utc("2023-02-01T00:00:00Z"));
        assert_eq!(WindowType::Months.slot(t), 28);
        assert_eq!(WindowType::Months.slot_keys(start), 1..=28);
        assert_eq!(
            WindowType::Months.next_start(start),
            Some(utc("2023-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn month_windows_are_sized_to_their_month() {
        let count = |s: &str| WindowType::Months.slot_count(utc(s));
        assert_eq!(count("2023-02-01T00:00:00Z"), 28);
        assert_eq!(count("2024-02-01T00:00:00Z"), 29);
        assert_eq!(count("2024-04-01T00:00:00Z"), 30);
        assert_eq!(count("2024-05-01T00:00:00Z"), 31);
        assert_eq!(
            WindowType::Hours.slot_count(utc("2024-05-01T00:00:00Z")),
            60
        );
        assert_eq!(WindowType::Days.slot_count(utc("2024-05-01T00:00:00Z")), 24);
    }

    #[test]
    fn slot_time_stamps_each_slot_and_rejects_foreign_keys() {
        let day = utc("2024-05-10T00:00:00Z");
        assert_eq!(
            WindowType::Days.slot_time(day, 14),
            Some(utc("2024-05-10T14:00:00Z"))
        );
        assert_eq!(WindowType::Days.slot_time(day, 24), None);
        let month = utc("2024-02-01T00:00:00Z");
        assert_eq!(
            WindowType::Months.slot_time(month, 29),
            Some(utc("2024-02-29T00:00:00Z"))
        );
        assert_eq!(WindowType::Months.slot_time(month, 30), None);
        assert_eq!(WindowType::Months.slot_time(month, 0), None);
    }

    #[test]
    fn windows_back_counts_whole_windows() {
        let now = utc("2024-03-31T10:30:00Z");
        assert_eq!(
            WindowType::Hours.windows_back(now, 47),
            Some(utc("2024-03-29T11:00:00Z"))
        );
        assert_eq!(
            WindowType::Days.windows_back(now, 1),
            Some(utc("2024-03-30T00:00:00Z"))
        );
        assert_eq!(
            WindowType::Months.windows_back(now, 1),
            Some(utc("2024-02-01T00:00:00Z"))
        );
    }

    #[test]
    fn window_names_round_trip_and_unknown_ones_are_rejected() {
        for w in WindowType::ALL {
            assert_eq!(w.as_str().parse::<WindowType>(), Ok(w));
        }
        assert!("WEEKS".parse::<WindowType>().is_err());
    }

    #[test]
    fn minutes_before_1970_truncate_downwards() {
        let t = utc("1969-12-31T23:59:30Z");
        assert_eq!(Minute::of(t).start(), utc("1969-12-31T23:59:00Z"));
    }
}
