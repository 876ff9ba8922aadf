//! The JSON form of a [`Document`] (spec §4). Written field by field in the spec's order; read
//! by a streaming visitor that checks every field without building a `serde_json::Value`
//! (decoding is on the flush path whenever a document is not cached).

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::window::format_millis;
use super::{Document, Family, MetricsError, Sample, WindowType};

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut root = serializer.serialize_map(Some(1))?;
        root.serialize_entry("TimeSerie", &TimeSerie(self))?;
        root.end()
    }
}

/// `TimeSerie`'s fields in spec §4 insert order: values, tags, timestamp, constants.
struct TimeSerie<'a>(&'a Document);

impl Serialize for TimeSerie<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let doc = self.0;
        let tags = doc.sample().family().tag_names().len();
        let mut map = serializer.serialize_map(Some(6 + tags))?;
        map.serialize_entry("values", &OneEntry("v", Slots(doc)))?;
        for (name, value) in doc.sample().tags() {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry("timestamp", &OneEntry("$date", format_millis(doc.start())))?;
        map.serialize_entry("propertyName", "value")?;
        map.serialize_entry("windowType", doc.window().as_str())?;
        map.serialize_entry("windowFrecuency", &1)?;
        map.serialize_entry("windowFrecuencyUnit", doc.window().frecuency_unit())?;
        map.end()
    }
}

/// `{"<key>": value}`.
struct OneEntry<T>(&'static str, T);

impl<T: Serialize> Serialize for OneEntry<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

/// `{"0": 0, "1": 3, ...}`: integer keys, which serde_json writes as unpadded strings.
struct Slots<'a>(&'a Document);

impl Serialize for Slots<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.0.window().slot_count(self.0.start());
        let mut map = serializer.serialize_map(Some(len))?;
        for (slot, value) in self.0.slots() {
            map.serialize_entry(&slot, &value)?;
        }
        map.end()
    }
}

/// Decodes and validates a `family` document.
pub(super) fn decode(family: Family, json: &[u8]) -> Result<Document, MetricsError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    OneKey("TimeSerie", SerieSeed(family))
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|e| MetricsError::CorruptDocument {
            family,
            reason: e.to_string(),
        })
}

/// A map with exactly the key `.0`, whose value `.1` reads.
struct OneKey<S>(&'static str, S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OneKey<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OneKey<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with the single key {:?}", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Value, A::Error> {
        let key: Option<Name> = map.next_key()?;
        match key {
            Some(Name(k)) if k == self.0 => {}
            _ => return Err(de::Error::invalid_value(de::Unexpected::Map, &self)),
        }
        let name = self.0;
        let value = map.next_value_seed(self.1)?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!(
                "the object holding {name:?} has other keys"
            )));
        }
        Ok(value)
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Name<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(v.to_owned().into()))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The fields of `TimeSerie` of one family.
struct SerieSeed(Family);

impl<'de> DeserializeSeed<'de> for SerieSeed {
    type Value = Document;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_map(self)
    }
}

#[derive(Default)]
struct Fields {
    values: Option<Vec<(u32, u64)>>,
    timestamp: Option<String>,
    property_name: Option<String>,
    window_type: Option<String>,
    window_frecuency: Option<u64>,
    window_frecuency_unit: Option<String>,
    tags: Vec<Option<String>>,
}

/// Stores a field's value, refusing a second occurrence.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::custom(format!("TimeSerie.{name} appears twice")));
    }
    Ok(())
}

fn required<T, E: de::Error>(slot: Option<T>, name: &str) -> Result<T, E> {
    slot.ok_or_else(|| E::custom(format!("TimeSerie.{name} is missing")))
}

impl<'de> Visitor<'de> for SerieSeed {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the TimeSerie object of a {} document", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let family = self.0;
        let names = family.tag_names();
        let mut f = Fields {
            tags: vec![None; names.len()],
            ..Fields::default()
        };
        while let Some(Name(key)) = map.next_key()? {
            match &*key {
                "values" => {
                    let v = map.next_value_seed(OneKey("v", SlotsSeed))?;
                    once(&mut f.values, v, "values")?
                }
                "timestamp" => {
                    let t = map.next_value_seed(OneKey("$date", PhantomData::<String>))?;
                    once(&mut f.timestamp, t, "timestamp")?
                }
                "propertyName" => once(&mut f.property_name, map.next_value()?, "propertyName")?,
                "windowType" => once(&mut f.window_type, map.next_value()?, "windowType")?,
                "windowFrecuency" => once(
                    &mut f.window_frecuency,
                    map.next_value()?,
                    "windowFrecuency",
                )?,
                "windowFrecuencyUnit" => once(
                    &mut f.window_frecuency_unit,
                    map.next_value()?,
                    "windowFrecuencyUnit",
                )?,
                other => match names.iter().position(|n| *n == other) {
                    Some(i) => once(&mut f.tags[i], map.next_value()?, names[i])?,
                    None => {
                        return Err(de::Error::custom(format!(
                        "TimeSerie.{other} is not a field of a {family} document (tags {names:?})"
                    )))
                    }
                },
            }
        }
        assemble(family, f)
    }
}

/// Checks the fields against each other and builds the document.
fn assemble<E: de::Error>(family: Family, f: Fields) -> Result<Document, E> {
    let window: WindowType = required::<_, E>(f.window_type, "windowType")?
        .parse()
        .map_err(E::custom)?;
    let check = |name: &str, got: Option<String>, want: &str| -> Result<(), E> {
        match required::<_, E>(got, name)? {
            got if got == want => Ok(()),
            got => Err(E::custom(format!(
                "TimeSerie.{name} is {got:?}, expected {want:?}"
            ))),
        }
    };
    check("propertyName", f.property_name, "value")?;
    check(
        "windowFrecuencyUnit",
        f.window_frecuency_unit,
        window.frecuency_unit(),
    )?;
    if required::<_, E>(f.window_frecuency, "windowFrecuency")? != 1 {
        return Err(E::custom("TimeSerie.windowFrecuency is not 1"));
    }

    let date = required::<_, E>(f.timestamp, "timestamp")?;
    let start = DateTime::parse_from_rfc3339(&date)
        .map_err(|e| E::custom(format!("TimeSerie.timestamp {date:?} is not a date ({e})")))?
        .with_timezone(&Utc);
    if window.start(start) != start {
        return Err(E::custom(format!(
            "TimeSerie.timestamp {date:?} is not the start of a {window} window"
        )));
    }

    let names = family.tag_names();
    let tags = names
        .iter()
        .zip(&f.tags)
        .map(|(name, value)| required::<_, E>(value.as_deref(), name).map(|v| (*name, v)))
        .collect::<Result<Vec<_>, E>>()?;
    let sample = Sample::from_tags(family, tags).map_err(E::custom)?;

    let slots = required::<_, E>(f.values, "values")?;
    let keys = window.slot_keys(start);
    let mut doc = Document::zeroed(sample, window, start);
    let mut seen = 0u64; // bit per slot index; a window has at most 60 slots
    for (slot, value) in slots {
        let index = doc.index(slot).ok_or_else(|| {
            E::custom(format!(
                "TimeSerie.values.v has the key \"{slot}\", not one of a {window} window starting {date} ({keys:?})"
            ))
        })?;
        if seen & (1 << index) != 0 {
            return Err(E::custom(format!(
                "TimeSerie.values.v has \"{slot}\" twice"
            )));
        }
        seen |= 1 << index;
        doc.add_at_index(index, value);
    }
    let expected = window.slot_count(start);
    if seen.count_ones() as usize != expected {
        return Err(E::custom(format!(
            "TimeSerie.values.v has {} of the {expected} keys of a {window} window starting {date} ({keys:?})",
            seen.count_ones()
        )));
    }
    Ok(doc)
}

/// The `v` object: canonical slot keys (unpadded decimal) with non-negative integer values.
struct SlotsSeed;

impl<'de> DeserializeSeed<'de> for SlotsSeed {
    type Value = Vec<(u32, u64)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SlotsSeed {
    type Value = Vec<(u32, u64)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of slot keys to non-negative integers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots = Vec::with_capacity(map.size_hint().unwrap_or(60).min(64));
        while let Some(Name(key)) = map.next_key()? {
            let canonical = !key.is_empty()
                && key.len() <= 2
                && key.bytes().all(|b| b.is_ascii_digit())
                && (key.len() == 1 || !key.starts_with('0'));
            let slot = key
                .parse::<u32>()
                .ok()
                .filter(|_| canonical)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "TimeSerie.values.v has the key {key:?}, not a slot number"
                    ))
                })?;
            let value: u64 = map.next_value().map_err(|e| {
                de::Error::custom(format!(
                    "TimeSerie.values.v.{slot} is not a non-negative integer ({e})"
                ))
            })?;
            slots.push((slot, value));
        }
        Ok(slots)
    }
}
