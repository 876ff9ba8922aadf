//! Reading documents back as a flat series (spec §9).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Serialize, Serializer};

use super::window::format_millis;
use super::{Document, MetricsError, WindowType};

/// One slot of a series: `{"timestamp":"2024-05-10T14:22:00.000Z","value":3}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    #[serde(serialize_with = "serialize_date")]
    pub timestamp: DateTime<Utc>,
    pub value: u64,
}

fn serialize_date<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_millis(*t))
}

/// The most points one [`series`] call returns (about 4.5 months of HOURS), so a wide query
/// cannot exhaust memory.
pub const MAX_SERIES_POINTS: usize = 200_000;

/// Flattens the `window` documents of every window from the one holding `from` to the one
/// holding `to`: one point per slot, stamped at the slot's time, summed slot-wise over the
/// documents of the same window (all tag tuples), ascending. Windows without documents give
/// zeros, as the platform's `MetricsBase` filler does. Other documents are ignored.
pub fn series(
    docs: &[Document],
    window: WindowType,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Point>, MetricsError> {
    if from > to {
        return Err(MetricsError::EmptyRange {
            from: format_millis(from),
            to: format_millis(to),
        });
    }
    let (first, last) = (window.start(from), window.start(to));
    let points = window_count(window, first, last).saturating_mul(max_slots(window));
    if points > MAX_SERIES_POINTS as u64 {
        return Err(MetricsError::RangeTooLarge {
            window,
            from: format_millis(from),
            to: format_millis(to),
            points,
            max: MAX_SERIES_POINTS,
        });
    }

    let mut sums: BTreeMap<DateTime<Utc>, Vec<u64>> = BTreeMap::new();
    for doc in in_range(docs, window, first, last) {
        let sum = sums
            .entry(doc.start())
            .or_insert_with(|| vec![0; window.slot_count(doc.start())]);
        for (total, (_, value)) in sum.iter_mut().zip(doc.slots()) {
            *total = total.saturating_add(value);
        }
    }

    let mut out = Vec::with_capacity(points as usize);
    let mut next = Some(first);
    while let Some(start) = next.filter(|s| *s <= last) {
        let sum = sums.get(&start);
        for (i, slot) in window.slot_keys(start).enumerate() {
            // Slot times of a valid window start are valid instants; `None` only at the very
            // end of chrono's range, where there is nothing to report.
            if let Some(timestamp) = window.slot_time(start, slot) {
                let value = sum.map_or(0, |s| s[i]);
                out.push(Point { timestamp, value });
            }
        }
        next = window.next_start(start);
    }
    Ok(out)
}

/// `count(*)`: the sum of every slot of the `window` documents of the windows from the one
/// holding `from` to the one holding `to`.
pub fn count(docs: &[Document], window: WindowType, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    in_range(docs, window, window.start(from), window.start(to))
        .fold(0u64, |sum, doc| sum.saturating_add(doc.total()))
}

fn in_range(
    docs: &[Document],
    window: WindowType,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> impl Iterator<Item = &Document> {
    docs.iter()
        .filter(move |d| d.window() == window && first <= d.start() && d.start() <= last)
}

/// Number of windows from the one starting at `first` to the one starting at `last`.
fn window_count(window: WindowType, first: DateTime<Utc>, last: DateTime<Utc>) -> u64 {
    let span = last - first;
    let between = match window {
        WindowType::Hours => span.num_hours(),
        WindowType::Days => span.num_days(),
        WindowType::Months => {
            i64::from(last.year() - first.year()) * 12 + i64::from(last.month())
                - i64::from(first.month())
        }
    };
    between.unsigned_abs().saturating_add(1)
}

fn max_slots(window: WindowType) -> u64 {
    match window {
        WindowType::Hours => 60,
        WindowType::Days => 24,
        WindowType::Months => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::utc;
    use super::super::{Outcome, Sample, Source};
    use super::*;

    fn doc(user: &str, window: WindowType, at: &str, n: u64) -> Document {
        let sample = Sample::operation(Source::CommandPoller, "POLL", Outcome::Ok, user);
        let t = utc(at);
        let mut doc = Document::zeroed(sample, window, t);
        doc.add(window.slot(t), n).unwrap();
        doc
    }

    #[test]
    fn one_document_flattens_to_one_point_per_minute_stamped_at_the_minute() {
        let docs = [doc("a", WindowType::Hours, "2024-05-10T14:22:00Z", 3)];
        let t = utc("2024-05-10T14:30:00Z");
        let points = series(&docs, WindowType::Hours, t, t).unwrap();
        assert_eq!(points.len(), 60);
        assert_eq!(points[0].timestamp, utc("2024-05-10T14:00:00Z"));
        assert_eq!(
            points[22],
            Point {
                timestamp: utc("2024-05-10T14:22:00Z"),
                value: 3
            }
        );
        assert_eq!(points.iter().map(|p| p.value).sum::<u64>(), 3);
        assert_eq!(
            serde_json::to_string(&points[22]).unwrap(),
            r#"{"timestamp":"2024-05-10T14:22:00.000Z","value":3}"#
        );
    }

    #[test]
    fn documents_of_the_same_window_are_summed_slot_wise() {
        let docs = [
            doc("a", WindowType::Days, "2024-05-10T14:00:00Z", 3),
            doc("b", WindowType::Days, "2024-05-10T14:59:00Z", 4),
            doc("b", WindowType::Days, "2024-05-10T02:00:00Z", 1),
        ];
        let t = utc("2024-05-10T00:00:00Z");
        let points = series(&docs, WindowType::Days, t, t).unwrap();
        assert_eq!(points.len(), 24);
        assert_eq!((points[14].value, points[2].value), (7, 1));
        assert_eq!(count(&docs, WindowType::Days, t, t), 8);
    }

    #[test]
    fn windows_without_documents_are_zero_filled_and_points_are_sorted() {
        let docs = [
            doc("a", WindowType::Months, "2024-03-31T10:00:00Z", 5),
            doc("a", WindowType::Months, "2024-01-02T10:00:00Z", 2),
            doc("a", WindowType::Hours, "2024-02-02T10:00:00Z", 9), // other window type
            doc("a", WindowType::Months, "2023-12-02T10:00:00Z", 9), // before the range
        ];
        let points = series(
            &docs,
            WindowType::Months,
            utc("2024-01-15T00:00:00Z"),
            utc("2024-03-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(points.len(), 31 + 29 + 31, "January, leap February, March");
        assert!(points.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        assert_eq!(points[1].value, 2);
        assert!(points[31..60].iter().all(|p| p.value == 0));
        assert_eq!(points[59].timestamp, utc("2024-02-29T00:00:00Z"));
        assert_eq!(points[90].value, 5);
        assert_eq!(
            count(
                &docs,
                WindowType::Months,
                utc("2024-01-15T00:00:00Z"),
                utc("2024-03-01T00:00:00Z")
            ),
            7
        );
    }

    #[test]
    fn inverted_and_oversized_ranges_are_refused() {
        let (a, b) = (utc("2024-05-10T00:00:00Z"), utc("2024-05-11T00:00:00Z"));
        assert!(matches!(
            series(&[], WindowType::Hours, b, a),
            Err(MetricsError::EmptyRange { .. })
        ));
        assert!(matches!(
            series(&[], WindowType::Hours, utc("2019-01-01T00:00:00Z"), b),
            Err(MetricsError::RangeTooLarge { .. })
        ));
        assert_eq!(
            series(&[], WindowType::Months, utc("2019-01-01T00:00:00Z"), b)
                .unwrap()
                .len(),
            1978
        );
    }
}
