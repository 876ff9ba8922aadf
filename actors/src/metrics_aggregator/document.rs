//! A time-series document (spec §4) and its store key. The JSON codec is in `json.rs`.

use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};

use super::window::format_millis;
use super::{json, Family, MetricsError, Sample, WindowType};

/// One aggregated window of one sample: `TimeSerie.values.v` plus its identity.
///
/// Invariant: `values` has exactly one entry per key of `window.slot_keys(start)`, in order,
/// and `start` is a window start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    sample: Sample,
    window: WindowType,
    start: DateTime<Utc>,
    values: Box<[u64]>,
}

impl Document {
    /// A document with every slot at 0, for the window of type `window` holding `at`.
    pub fn zeroed(sample: Sample, window: WindowType, at: DateTime<Utc>) -> Document {
        let start = window.start(at);
        Document {
            sample,
            window,
            start,
            values: vec![0; window.slot_count(start)].into_boxed_slice(),
        }
    }

    /// `v[slot] += n` (saturating). The slot must be one of the window's keys.
    pub fn add(&mut self, slot: u32, n: u64) -> Result<(), MetricsError> {
        let index = self
            .index(slot)
            .ok_or_else(|| MetricsError::SlotOutOfRange {
                window: self.window,
                start: format_millis(self.start),
                slot,
                keys: format!("{:?}", self.window.slot_keys(self.start)),
            })?;
        self.add_at_index(index, n);
        Ok(())
    }

    /// `+= n` (saturating) on the slot at `index`, as given by [`Document::index`].
    pub(crate) fn add_at_index(&mut self, index: usize, n: u64) {
        self.values[index] = self.values[index].saturating_add(n);
    }

    /// Index in `values` of `slot`, if it is one of the window's keys.
    pub(crate) fn index(&self, slot: u32) -> Option<usize> {
        let keys = self.window.slot_keys(self.start);
        if keys.contains(&slot) {
            Some((slot - keys.start()) as usize)
        } else {
            None
        }
    }

    pub fn sample(&self) -> &Sample {
        &self.sample
    }

    pub fn window(&self) -> WindowType {
        self.window
    }

    /// The window start, i.e. the document's `timestamp`.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The value of `slot`, if it is one of the window's keys.
    pub fn get(&self, slot: u32) -> Option<u64> {
        self.index(slot).map(|i| self.values[i])
    }

    /// `(slot, value)` for every key, ascending.
    pub fn slots(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.window
            .slot_keys(self.start)
            .zip(self.values.iter().copied())
    }

    /// Sum of all slots (the `count(*)` of spec §9 for this document).
    pub fn total(&self) -> u64 {
        self.values.iter().fold(0u64, |a, v| a.saturating_add(*v))
    }

    /// The store key of this document's identity.
    pub fn key(&self) -> DocKey {
        DocKey::new(&self.sample, self.window, self.start)
    }

    /// The exact JSON of spec §4 (without the Mongo `_id`).
    pub fn to_json(&self) -> Vec<u8> {
        // Our `Serialize` impls never fail and every map key is a string or an integer, the two
        // key kinds serde_json accepts: an error here would be a bug in this module.
        serde_json::to_vec(self).expect("a metrics document always serialises")
    }

    /// Decodes the JSON of a `family` document, checking every field of spec §4: the tag set,
    /// the constant fields, an aligned timestamp and exactly the window's slot keys.
    pub fn from_json(family: Family, json: &[u8]) -> Result<Document, MetricsError> {
        json::decode(family, json)
    }

    /// The value stored under [`Document::key`]: [`STORED_V1`], then every slot value in slot
    /// order as an LEB128 varint. The key already holds the identity, so an hour document takes
    /// 61 bytes here against about 400 as JSON; the JSON is rendered when it is read.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.values.len());
        self.encode_stored(&mut out);
        out
    }

    /// [`Document::to_stored`] into `out`, which is cleared first: a flush reuses one buffer.
    pub fn encode_stored(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(STORED_V1);
        for &value in self.values.iter() {
            push_varint(out, value);
        }
    }

    /// Decodes a record read from the store, written by [`Document::to_stored`] or, by earlier
    /// builds, as the JSON of spec §4. A JSON record must be the document its key names, so a
    /// misplaced or tampered record is reported instead of being added to.
    pub fn decode_stored(key: &[u8], bytes: &[u8]) -> Result<(DocKey, Document), MetricsError> {
        let (key, sample) = DocKey::parse_with_sample(key)?;
        let (window, start) = (key.window(), key.start());
        match bytes.split_first() {
            Some((&STORED_V1, varints)) => {
                let values = read_varints(varints, window.slot_count(start)).map_err(|reason| {
                    MetricsError::CorruptDocument {
                        family: key.family(),
                        reason,
                    }
                })?;
                let doc = Document {
                    sample,
                    window,
                    start,
                    values,
                };
                Ok((key, doc))
            }
            _ => {
                let doc = Document::from_json(key.family(), bytes)?;
                let found = doc.key();
                if found != key {
                    return Err(MetricsError::KeyMismatch {
                        key: key.to_string(),
                        found: found.to_string(),
                    });
                }
                Ok((key, doc))
            }
        }
    }
}

/// The store key of a document identity: `<family>/<window>/<start>/<len>:<tag>/...`.
///
/// - `<start>` is the window start in epoch milliseconds as 16 lowercase hex digits with the
///   sign bit flipped, so byte order is time order, also before 1970.
/// - Tags follow in the family's order, each prefixed by its byte length, so any value
///   (including `/` in API routes) keeps the key unambiguous.
///
/// The constant fields of the identity (propertyName, windowFrecuency, its unit) are implied
/// by the window. `DocKey::prefix(family, window)` selects one (family, window).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DocKey {
    bytes: Box<[u8]>,
    family: Family,
    window: WindowType,
    start: DateTime<Utc>,
}

impl DocKey {
    /// The key of `sample`'s document for the `window` holding `at`.
    pub fn new(sample: &Sample, window: WindowType, at: DateTime<Utc>) -> DocKey {
        let start = window.start(at);
        // Exact length, so that `into_boxed_slice` does not reallocate.
        let tags: usize = sample
            .values()
            .iter()
            .map(|v| 2 + decimal_len(v.len()) + v.len())
            .sum();
        let mut bytes = Vec::with_capacity(time_bound_len(sample.family(), window) + tags);
        Self::write_time_bound(&mut bytes, sample.family(), window, start);
        for value in sample.values() {
            bytes.push(b'/');
            push_decimal(&mut bytes, value.len());
            bytes.push(b':');
            bytes.extend_from_slice(value.as_bytes());
        }
        debug_assert_eq!(bytes.len(), bytes.capacity(), "key length computed exactly");
        DocKey {
            bytes: bytes.into_boxed_slice(),
            family: sample.family(),
            window,
            start,
        }
    }

    /// Parses and validates a key read from the store.
    pub fn parse(bytes: &[u8]) -> Result<DocKey, MetricsError> {
        Self::parse_with_sample(bytes).map(|(key, _)| key)
    }

    /// [`DocKey::parse`], also giving the sample the key names.
    pub fn parse_with_sample(bytes: &[u8]) -> Result<(DocKey, Sample), MetricsError> {
        let bad = |reason: &str| MetricsError::BadKey {
            key: String::from_utf8_lossy(bytes).into_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut parts = text.splitn(4, '/');
        let mut next = |what: &str| parts.next().ok_or_else(|| bad(what));
        let family: Family = next("no family")?
            .parse()
            .map_err(|_| bad("unknown family"))?;
        let window: WindowType = next("no window type")?
            .parse()
            .map_err(|_| bad("unknown window type"))?;
        let start = Some(next("no timestamp")?)
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .and_then(|bits| DateTime::from_timestamp_millis((bits ^ SIGN) as i64))
            .filter(|t| window.start(*t) == *t)
            .ok_or_else(|| bad("the timestamp is not a window start in 16 hex digits"))?;
        let mut rest = next("no tags")?;
        let mut tags = Vec::with_capacity(family.tag_names().len());
        for (i, name) in family.tag_names().iter().enumerate() {
            if i > 0 {
                rest = rest.strip_prefix('/').ok_or_else(|| bad("too few tags"))?;
            }
            let (len, tail) = rest
                .split_once(':')
                .ok_or_else(|| bad("a tag lacks its length"))?;
            let len: usize = len
                .parse()
                .map_err(|_| bad("a tag length is not a number"))?;
            let value = tail
                .get(..len)
                .ok_or_else(|| bad("a tag is shorter than its length"))?;
            tags.push((*name, value));
            rest = &tail[len..];
        }
        let sample = Sample::from_tags(family, tags).map_err(|e| bad(&e.to_string()))?;
        // Re-encoding rejects trailing bytes and non-canonical lengths or digits.
        let key = DocKey::new(&sample, window, start);
        if *key.bytes != *bytes {
            return Err(bad("not in canonical form"));
        }
        Ok((key, sample))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn window(&self) -> WindowType {
        self.window
    }

    /// The window start (the document's `timestamp`).
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// `<family>/<window>/`: the prefix of every key of one (family, window).
    pub fn prefix(family: Family, window: WindowType) -> Vec<u8> {
        format!("{}/{}/", family.as_str(), window.as_str()).into_bytes()
    }

    /// A bound such that the keys of (family, window) below it are exactly the documents whose
    /// window starts before `t`.
    pub fn time_bound(family: Family, window: WindowType, t: DateTime<Utc>) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(time_bound_len(family, window));
        Self::write_time_bound(&mut bytes, family, window, t);
        bytes
    }

    // Written by hand rather than with `write!`: key building is on the flush path.
    fn write_time_bound(out: &mut Vec<u8>, family: Family, window: WindowType, t: DateTime<Utc>) {
        out.extend_from_slice(family.as_str().as_bytes());
        out.push(b'/');
        out.extend_from_slice(window.as_str().as_bytes());
        out.push(b'/');
        let bits = (t.timestamp_millis() as u64) ^ SIGN;
        for shift in (0..16).rev() {
            out.push(b"0123456789abcdef"[((bits >> (shift * 4)) & 0xf) as usize]);
        }
    }
}

/// First byte of [`Document::to_stored`] (a JSON document starts with `{`).
const STORED_V1: u8 = 1;

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Exactly `count` LEB128 varints, nothing after them.
fn read_varints(mut bytes: &[u8], count: usize) -> Result<Box<[u64]>, String> {
    let mut values = Vec::with_capacity(count);
    while let Some((&first, rest)) = bytes.split_first() {
        if values.len() == count {
            return Err(format!("more than the window's {count} slot values"));
        }
        let (mut value, mut shift, mut byte) = (0u64, 0u32, first);
        bytes = rest;
        loop {
            if shift == 63 && byte > 1 {
                return Err(format!("slot value {} overflows 64 bits", values.len()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            let Some((&next, rest)) = bytes.split_first() else {
                return Err(format!("slot value {} is cut short", values.len()));
            };
            (byte, bytes) = (next, rest);
        }
        values.push(value);
    }
    if values.len() != count {
        return Err(format!(
            "{} slot values where the window has {count}",
            values.len()
        ));
    }
    Ok(values.into_boxed_slice())
}

/// Length of `<family>/<window>/<16 hex digits>`.
fn time_bound_len(family: Family, window: WindowType) -> usize {
    family.as_str().len() + window.as_str().len() + 18
}

fn decimal_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

const SIGN: u64 = 1 << 63;

impl Hash for DocKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bytes determine the other fields, so this agrees with `Eq`.
        self.bytes.hash(state);
    }
}

impl fmt::Display for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are built from strings, so they are UTF-8.
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

impl fmt::Debug for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::utc;
    use super::super::{Outcome, Source};
    use super::*;

    fn sample() -> Sample {
        Sample::operation(Source::CommandExecutor, "INSERT", Outcome::Ok, "edge01")
    }

    fn example_doc(window: WindowType) -> Document {
        let mut doc = Document::zeroed(sample(), window, utc("2024-05-10T14:22:10Z"));
        let slot = window.slot(utc("2024-05-10T14:22:10Z"));
        doc.add(slot, 3).unwrap();
        doc
    }

    #[test]
    fn zeroed_document_is_aligned_and_has_every_slot_at_zero() {
        let doc = Document::zeroed(sample(), WindowType::Months, utc("2024-02-29T13:00:00Z"));
        assert_eq!(doc.start(), utc("2024-02-01T00:00:00Z"));
        assert_eq!(doc.slots().count(), 29);
        assert_eq!(doc.total(), 0);
        assert_eq!(doc.slots().next(), Some((1, 0)));
        assert_eq!(doc.slots().last(), Some((29, 0)));
    }

    #[test]
    fn adding_to_a_foreign_slot_is_an_error() {
        let mut doc = Document::zeroed(sample(), WindowType::Months, utc("2023-02-10T00:00:00Z"));
        assert!(doc.add(29, 1).is_err());
        assert!(doc.add(0, 1).is_err());
        doc.add(28, 2).unwrap();
        assert_eq!(doc.get(28), Some(2));
    }

    #[test]
    fn month_documents_serialise_one_key_per_day_of_their_month() {
        for (month, days) in [
            ("2023-02", 28),
            ("2024-02", 29),
            ("2024-04", 30),
            ("2024-05", 31),
        ] {
            let at = utc(&format!("{month}-01T00:00:00Z"));
            let doc = Document::zeroed(sample(), WindowType::Months, at);
            let json: serde_json::Value = serde_json::from_slice(&doc.to_json()).unwrap();
            let v = json["TimeSerie"]["values"]["v"].as_object().unwrap();
            assert_eq!(v.len(), days, "{month}");
            assert!(v.contains_key(&days.to_string()) && !v.contains_key("0"));
        }
    }

    #[test]
    fn every_document_round_trips_through_json() {
        for window in WindowType::ALL {
            let doc = example_doc(window);
            let back = Document::from_json(Family::Operation, &doc.to_json()).unwrap();
            assert_eq!(back, doc);
        }
        let api = Sample::api("/api/x/\"quoted\"", "POST", "503", "é");
        let doc = Document::zeroed(api, WindowType::Days, utc("2024-05-10T00:00:00Z"));
        assert_eq!(
            Document::from_json(Family::Api, &doc.to_json()).unwrap(),
            doc
        );
    }

    #[test]
    fn corrupt_documents_are_errors_not_panics() {
        let good = String::from_utf8(example_doc(WindowType::Hours).to_json()).unwrap();
        let cases = [
            "".to_owned(),
            "[]".to_owned(),
            "{\"TimeSerie\":1}".to_owned(),
            good.replace("\"22\":3", "\"22\":-3"),
            good.replace("\"22\":3", "\"22\":3.5"),
            good.replace("\"22\":3,", ""),
            good.replace("\"22\":3", "\"022\":3"),
            good.replace("\"59\":0", "\"59\":0,\"60\":0"),
            good.replace("14:00:00.000Z", "14:01:00.000Z"),
            good.replace("\"windowFrecuency\":1", "\"windowFrecuency\":2"),
            good.replace("\"MINUTES\"", "\"HOURS\""),
            good.replace("\"propertyName\":\"value\"", "\"propertyName\":\"x\""),
            good.replace("\"source\"", "\"api\""),
            good.replace("\"user\":\"edge01\"", "\"user\":7"),
            good.replace("{\"TimeSerie\"", "{\"_id\":1,\"TimeSerie\""),
        ];
        for case in cases {
            let err = Document::from_json(Family::Operation, case.as_bytes());
            assert!(
                matches!(err, Err(MetricsError::CorruptDocument { .. })),
                "{case}: {err:?}"
            );
        }
        // Messages name the faulty field.
        for (case, needle) in [
            (good.replace("\"22\":3", "\"22\":-3"), "values.v.22"),
            (good.replace("\"22\":3,", ""), "59 of the 60 keys"),
            (good.replace("\"22\":3", "\"21\":3"), "\"21\" twice"),
            (
                good.replace("\"source\"", "\"api\""),
                "TimeSerie.api is not a field",
            ),
            (
                good.replace(",\"propertyName\":\"value\"", ""),
                "propertyName is missing",
            ),
        ] {
            let err = Document::from_json(Family::Operation, case.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        // A document of another family lacks or adds tags.
        assert!(Document::from_json(Family::Ontology, good.as_bytes()).is_err());
    }

    #[test]
    fn identity_covers_family_every_tag_window_and_start() {
        let at = utc("2024-05-10T14:22:00Z");
        let key = |s: &Sample, w, t| DocKey::new(s, w, t);
        let base = key(&sample(), WindowType::Hours, at);
        assert_eq!(
            base,
            key(&sample(), WindowType::Hours, utc("2024-05-10T14:59:59Z"))
        );
        let other_user = Sample::operation(Source::CommandExecutor, "INSERT", Outcome::Ok, "x");
        let other_result =
            Sample::operation(Source::CommandExecutor, "INSERT", Outcome::Ko, "edge01");
        let other_source = Sample::operation(Source::Engine, "INSERT", Outcome::Ok, "edge01");
        let other_family = Sample::control_panel("INSERT", Outcome::Ok, "edge01");
        for k in [
            key(&other_user, WindowType::Hours, at),
            key(&other_result, WindowType::Hours, at),
            key(&other_source, WindowType::Hours, at),
            key(&other_family, WindowType::Hours, at),
            key(&sample(), WindowType::Days, at),
            key(&sample(), WindowType::Hours, utc("2024-05-10T15:00:00Z")),
        ] {
            assert_ne!(k, base);
        }
    }

    #[test]
    fn keys_with_separators_in_tags_stay_unambiguous_and_parse_back() {
        let a = Sample::api("/a/1:b", "GET", "200", "u");
        let b = Sample::api("/a", "1:b/GET", "200", "u");
        let at = utc("2024-05-10T14:00:00Z");
        let (ka, kb) = (
            DocKey::new(&a, WindowType::Hours, at),
            DocKey::new(&b, WindowType::Hours, at),
        );
        assert_ne!(ka, kb);
        assert_eq!(DocKey::parse(ka.as_bytes()).unwrap(), ka);
        assert_eq!(DocKey::parse(kb.as_bytes()).unwrap(), kb);
        assert_eq!(ka.family(), Family::Api);
        assert_eq!(ka.start(), at);
    }

    #[test]
    fn keys_sort_by_window_start_under_their_family_window_prefix() {
        let times = [
            "1969-07-20T20:00:00Z",
            "2024-05-10T09:00:00Z",
            "2024-05-10T14:00:00Z",
        ];
        let keys: Vec<DocKey> = times
            .iter()
            .map(|t| DocKey::new(&sample(), WindowType::Hours, utc(t)))
            .collect();
        let prefix = DocKey::prefix(Family::Operation, WindowType::Hours);
        assert!(keys.iter().all(|k| k.as_bytes().starts_with(&prefix)));
        assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        let bound = DocKey::time_bound(Family::Operation, WindowType::Hours, utc(times[2]));
        assert!(keys[1].as_bytes() < &bound[..] && &bound[..] <= keys[2].as_bytes());
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good =
            DocKey::new(&sample(), WindowType::Hours, utc("2024-05-10T14:00:00Z")).to_string();
        let cases = [
            String::new(),
            "MetricsOperation".into(),
            good.replace("MetricsOperation", "MetricsFoo"),
            good.replace("HOURS", "DAYS"), // start not at midnight
            good.replace("/6:edge01", "/7:edge01"),
            good.replace("/6:edge01", "/06:edge01"),
            format!("{good}/2:xx"),
            good.rsplit_once('/').unwrap().0.to_owned(),
        ];
        for case in cases {
            assert!(DocKey::parse(case.as_bytes()).is_err(), "{case}");
        }
        assert!(DocKey::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_stored_form_reads_back_as_the_same_document_in_a_fraction_of_the_json() {
        for window in WindowType::ALL {
            let mut doc = example_doc(window);
            let last = doc.slots().last().unwrap().0;
            doc.add(last, u64::MAX).unwrap();
            let stored = doc.to_stored();
            let (key, back) = Document::decode_stored(doc.key().as_bytes(), &stored).unwrap();
            assert_eq!((key, &back), (doc.key(), &doc));
            assert!(
                stored.len() * 4 < doc.to_json().len(),
                "{window:?}: {} bytes",
                stored.len()
            );
        }
    }

    #[test]
    fn a_damaged_stored_form_is_refused_with_what_is_wrong() {
        let doc = example_doc(WindowType::Hours);
        let key = doc.key();
        let stored = doc.to_stored();
        let mut overflow = stored[..stored.len() - 1].to_vec();
        overflow.extend_from_slice(&[0xff; 10]);
        let cases = [
            (
                stored[..stored.len() - 1].to_vec(),
                "59 slot values where the window has 60",
            ),
            (
                [stored.as_slice(), &[0]].concat(),
                "more than the window's 60",
            ),
            (
                [&stored[..stored.len() - 1], &[0x80][..]].concat(),
                "cut short",
            ),
            (overflow, "overflows 64 bits"),
        ];
        for (bytes, expected) in cases {
            let err = Document::decode_stored(key.as_bytes(), &bytes).unwrap_err();
            assert!(
                matches!(&err, MetricsError::CorruptDocument { reason, .. } if reason.contains(expected)),
                "{expected}: {err}"
            );
        }
    }

    #[test]
    fn a_stored_record_must_match_its_key() {
        let doc = example_doc(WindowType::Days);
        let key = doc.key();
        // JSON, as earlier builds stored documents.
        let (k, d) = Document::decode_stored(key.as_bytes(), &doc.to_json()).unwrap();
        assert_eq!((k, d), (key, doc.clone()));
        let other = example_doc(WindowType::Hours).key();
        let err = Document::decode_stored(other.as_bytes(), &doc.to_json());
        assert!(err.is_err());
    }
}
