//! Which documents to delete. The platform keeps them forever (spec §8); an edge agent cannot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DocKey, Family, WindowType};

/// How many windows of each type to keep, counting the current one. `0` behaves like `1`: the
/// window being written is never deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    pub hours: u32,
    pub days: u32,
    pub months: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            hours: 48,
            days: 62,
            months: 24,
        }
    }
}

/// Keys from `from` (inclusive) to `to` (exclusive), as RocksDB `delete_range` takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub from: Vec<u8>,
    pub to: Vec<u8>,
}

impl Retention {
    /// Windows of type `window` to keep, at least 1.
    pub fn keep(&self, window: WindowType) -> u32 {
        match window {
            WindowType::Hours => self.hours,
            WindowType::Days => self.days,
            WindowType::Months => self.months,
        }
        .max(1)
    }

    /// Start of the oldest `window` kept at `now`; documents starting earlier are expired.
    /// `None` when that lies before chrono's range, i.e. nothing expires.
    pub fn oldest_kept(&self, window: WindowType, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        window.windows_back(now, self.keep(window) - 1)
    }

    /// Whether the document under `key` is expired at `now`.
    pub fn is_expired(&self, key: &DocKey, now: DateTime<Utc>) -> bool {
        self.oldest_kept(key.window(), now)
            .is_some_and(|oldest| key.start() < oldest)
    }

    /// The keys among `keys` to delete at `now`.
    pub fn expired<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a DocKey>,
        now: DateTime<Utc>,
    ) -> Vec<DocKey> {
        keys.into_iter()
            .filter(|k| self.is_expired(k, now))
            .cloned()
            .collect()
    }

    /// For each family and window, the key range holding exactly the documents expired at
    /// `now` (keys sort by window start under their prefix).
    pub fn delete_ranges(&self, now: DateTime<Utc>) -> Vec<KeyRange> {
        let mut ranges = Vec::new();
        for window in WindowType::ALL {
            let Some(oldest) = self.oldest_kept(window, now) else {
                continue;
            };
            for &family in Family::ALL {
                ranges.push(KeyRange {
                    from: DocKey::prefix(family, window),
                    to: DocKey::time_bound(family, window, oldest),
                });
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::utc;
    use super::super::{Outcome, Sample, Source};
    use super::*;

    fn key(window: WindowType, at: &str) -> DocKey {
        let sample = Sample::operation(Source::Registration, "CHECK", Outcome::Ok, "");
        DocKey::new(&sample, window, utc(at))
    }

    #[test]
    fn default_retention_keeps_48_hours_62_days_and_24_months_including_the_current_one() {
        let r = Retention::default();
        let now = utc("2024-05-10T14:22:00Z");
        assert_eq!(
            r.oldest_kept(WindowType::Hours, now),
            Some(utc("2024-05-08T15:00:00Z"))
        );
        assert_eq!(
            r.oldest_kept(WindowType::Days, now),
            Some(utc("2024-03-10T00:00:00Z"))
        );
        assert_eq!(
            r.oldest_kept(WindowType::Months, now),
            Some(utc("2022-06-01T00:00:00Z"))
        );
    }

    #[test]
    fn only_windows_older_than_the_kept_ones_expire() {
        let r = Retention::default();
        let now = utc("2024-05-10T14:22:00Z");
        let keys = [
            key(WindowType::Hours, "2024-05-08T14:00:00Z"), // 49th hour back: expired
            key(WindowType::Hours, "2024-05-08T15:00:00Z"), // 48th: kept
            key(WindowType::Hours, "2024-05-10T14:00:00Z"), // current
            key(WindowType::Days, "2024-03-09T00:00:00Z"),  // expired
            key(WindowType::Days, "2024-03-10T00:00:00Z"),  // kept
            key(WindowType::Months, "2022-05-01T00:00:00Z"), // expired
            key(WindowType::Months, "2022-06-01T00:00:00Z"), // kept
        ];
        let expired = r.expired(&keys, now);
        assert_eq!(expired, [keys[0].clone(), keys[3].clone(), keys[5].clone()]);
    }

    #[test]
    fn zero_retention_still_keeps_the_current_window() {
        let r = Retention {
            hours: 0,
            days: 0,
            months: 0,
        };
        let now = utc("2024-05-10T14:22:00Z");
        assert!(!r.is_expired(&key(WindowType::Hours, "2024-05-10T14:00:00Z"), now));
        assert!(r.is_expired(&key(WindowType::Hours, "2024-05-10T13:00:00Z"), now));
    }

    #[test]
    fn delete_ranges_cover_exactly_the_expired_keys() {
        let r = Retention::default();
        let now = utc("2024-05-10T14:22:00Z");
        let ranges = r.delete_ranges(now);
        assert_eq!(ranges.len(), 15);
        let in_a_range = |k: &DocKey| {
            ranges.iter().any(|range| {
                range.from.as_slice() <= k.as_bytes() && k.as_bytes() < range.to.as_slice()
            })
        };
        for (window, at) in [
            (WindowType::Hours, "2024-05-08T14:00:00Z"),
            (WindowType::Hours, "2024-05-08T15:00:00Z"),
            (WindowType::Hours, "1960-01-01T00:00:00Z"),
            (WindowType::Days, "2024-03-09T00:00:00Z"),
            (WindowType::Days, "2024-05-10T00:00:00Z"),
            (WindowType::Months, "2022-05-01T00:00:00Z"),
            (WindowType::Months, "2022-06-01T00:00:00Z"),
        ] {
            let k = key(window, at);
            assert_eq!(in_a_range(&k), r.is_expired(&k, now), "{k}");
        }
    }

    #[test]
    fn retention_reads_from_yaml_with_defaults_and_rejects_unknown_keys() {
        let r: Retention = serde_norway::from_str("hours: 6").unwrap();
        assert_eq!(
            r,
            Retention {
                hours: 6,
                ..Retention::default()
            }
        );
        assert!(serde_norway::from_str::<Retention>("weeks: 2").is_err());
    }
}
