//! The five metrics families and a [`Sample`]: one family with a value for each of its tags.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use super::MetricsError;

/// Declares a closed set of tag values with their wire spelling.
macro_rules! tag_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The tag value as written in documents.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

tag_enum!(
    /// A metrics family, i.e. an Onesait Platform time-series ontology (spec §2), named by its
    /// ontology (collection), e.g. `MetricsOperation`.
    #[derive(PartialOrd, Ord)]
    Family {
        Operation => "MetricsOperation",
        Api => "MetricsApi",
        Ontology => "MetricsOntology",
        ControlPanel => "MetricsControlPanel",
        QueriesControlPanel => "MetricsQueriesControlPanel",
    }
);

impl Family {
    /// The family's tag names, in the order documents write them (spec §2 and §4 example).
    pub fn tag_names(self) -> &'static [&'static str] {
        match self {
            Family::Operation => &["result", "user", "operationType", "source"],
            Family::Api => &["result", "user", "api", "operationType"],
            Family::Ontology => &["result", "user", "operationType", "source", "ontology"],
            Family::ControlPanel => &["result", "user", "operationType"],
            Family::QueriesControlPanel => &["result", "user", "ontology"],
        }
    }
}

impl FromStr for Family {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| MetricsError::UnknownFamily(s.to_owned()))
    }
}

tag_enum!(
    /// The agent component that performed an operation (`source` tag).
    Source {
        Registration => "REGISTRATION",
        CommandPoller => "COMMANDPOLLER",
        CommandExecutor => "COMMANDEXECUTOR",
        MessageSender => "MESSAGESENDER",
        LogShipper => "LOGSHIPPER",
        KeyVault => "KEYVAULT",
        Launcher => "LAUNCHER",
        Engine => "ENGINE",
    }
);

tag_enum!(
    /// Whether an operation succeeded (`result` tag).
    Outcome {
        Ok => "OK",
        Ko => "KO",
    }
);

tag_enum!(
    /// The stored entity a `MetricsOntology` sample is about (`ontology` tag).
    Entity {
        ScanMode => "scanMode",
        SouthConnector => "southConnector",
        NorthConnector => "northConnector",
        IpFilter => "ipFilter",
        Certificate => "certificate",
        HistoryQuery => "historyQuery",
        EngineSettings => "engineSettings",
        RegistrationSettings => "registrationSettings",
    }
);

tag_enum!(
    /// The change made to an entity (`operationType` tag of `MetricsOntology`).
    Change {
        Insert => "INSERT",
        Update => "UPDATE",
        Delete => "DELETE",
    }
);

impl From<bool> for Outcome {
    fn from(ok: bool) -> Self {
        if ok {
            Outcome::Ok
        } else {
            Outcome::Ko
        }
    }
}

/// One family and a value for each of its tags, and nothing else: the constructors make a wrong
/// tag set unrepresentable. Cheap to clone (one `Arc`) and to hash (the hash is computed once),
/// so build a sample once and count it by reference.
#[derive(Clone)]
pub struct Sample(Arc<Inner>);

struct Inner {
    family: Family,
    /// Hash of family and values with the process-wide [`hash_state`].
    hash: u64,
    /// One value per name of `family.tag_names()`, same order.
    values: Box<[Box<str>]>,
}

fn hash_state() -> &'static RandomState {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new)
}

impl Sample {
    /// `MetricsOperation`: an operation of an agent component.
    pub fn operation(source: Source, operation_type: &str, result: Outcome, user: &str) -> Sample {
        Sample::build(
            Family::Operation,
            [result.as_str(), user, operation_type, source.as_str()],
        )
    }

    /// `MetricsApi`: one OIAnalytics call. `result` is the HTTP status code (`"200"`) or the
    /// network error kind (`"timeout"`, `"connect"`, ...).
    pub fn api(route: &str, method: &str, result: &str, user: &str) -> Sample {
        Sample::build(Family::Api, [result, user, route, method])
    }

    /// `MetricsOntology`: a change to a stored entity.
    pub fn ontology(
        ontology: Entity,
        operation_type: Change,
        result: Outcome,
        user: &str,
        source: Source,
    ) -> Sample {
        Sample::build(
            Family::Ontology,
            [
                result.as_str(),
                user,
                operation_type.as_str(),
                source.as_str(),
                ontology.as_str(),
            ],
        )
    }

    /// `MetricsControlPanel`: an operation through the local control API.
    pub fn control_panel(operation_type: &str, result: Outcome, user: &str) -> Sample {
        Sample::build(
            Family::ControlPanel,
            [result.as_str(), user, operation_type],
        )
    }

    /// `MetricsQueriesControlPanel`: a query on `ontology` through the local control API.
    pub fn queries_control_panel(ontology: &str, result: Outcome, user: &str) -> Sample {
        Sample::build(
            Family::QueriesControlPanel,
            [result.as_str(), user, ontology],
        )
    }

    /// A sample from named tags in any order, e.g. read back from a stored document or a
    /// platform-side value outside the agent's enums. The names must be exactly the family's.
    pub fn from_tags<'a>(
        family: Family,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Sample, MetricsError> {
        let names = family.tag_names();
        let mut values: Vec<Option<&str>> = vec![None; names.len()];
        let mut got = Vec::new();
        let mut ok = true;
        for (name, value) in tags {
            got.push(name.to_owned());
            match names.iter().position(|n| *n == name) {
                Some(i) if values[i].is_none() => values[i] = Some(value),
                _ => ok = false, // unknown or repeated
            }
        }
        match values.into_iter().collect::<Option<Vec<&str>>>() {
            Some(values) if ok => Ok(Sample::build(family, values)),
            _ => Err(MetricsError::TagSet {
                family,
                expected: names,
                got,
            }),
        }
    }

    fn build<'a>(family: Family, values: impl IntoIterator<Item = &'a str>) -> Sample {
        let values: Box<[Box<str>]> = values.into_iter().map(Box::from).collect();
        debug_assert_eq!(values.len(), family.tag_names().len());
        let hash = hash_state().hash_one((family, &values));
        Sample(Arc::new(Inner {
            family,
            hash,
            values,
        }))
    }

    pub fn family(&self) -> Family {
        self.0.family
    }

    /// `(name, value)` of every tag, in document order.
    pub fn tags(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.family()
            .tag_names()
            .iter()
            .copied()
            .zip(self.0.values.iter().map(|v| &**v))
    }

    /// The value of tag `name`, if the family has it.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub(crate) fn values(&self) -> &[Box<str>] {
        &self.0.values
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash
                && self.0.family == other.0.family
                && self.0.values == other.0.values)
    }
}

impl Eq for Sample {}

impl Hash for Sample {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl Ord for Sample {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.family, &self.0.values).cmp(&(other.0.family, &other.0.values))
    }
}

impl PartialOrd for Sample {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.family())?;
        for (i, (name, value)) in self.tags().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// A `Hasher` for maps keyed by [`Sample`]: `Sample::hash` writes its precomputed hash, which is
/// passed through instead of being hashed again.
#[derive(Default)]
pub(crate) struct SampleHasher(u64);

impl Hasher for SampleHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for key types other than `Sample`; still a usable (FNV-1a) hash.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_constructors_fill_exactly_the_family_tags_in_document_order() {
        let s = Sample::operation(Source::CommandPoller, "POLL", Outcome::Ok, "edge01");
        let tags: Vec<_> = s.tags().collect();
        assert_eq!(
            tags,
            [
                ("result", "OK"),
                ("user", "edge01"),
                ("operationType", "POLL"),
                ("source", "COMMANDPOLLER")
            ]
        );
        let o = Sample::ontology(
            Entity::ScanMode,
            Change::Insert,
            Outcome::Ko,
            "oia",
            Source::CommandExecutor,
        );
        assert_eq!(o.tag("ontology"), Some("scanMode"));
        assert_eq!(o.tag("operationType"), Some("INSERT"));
        let a = Sample::api(
            "/api/oianalytics/oibus/commands/list",
            "GET",
            "200",
            "edge01",
        );
        assert_eq!(a.tag("api"), Some("/api/oianalytics/oibus/commands/list"));
        assert_eq!(a.tag("source"), None);
        for s in [
            Sample::control_panel("LOGIN", Outcome::Ok, "ops"),
            Sample::queries_control_panel("MetricsOperation", Outcome::Ok, "ops"),
        ] {
            assert_eq!(s.tags().count(), s.family().tag_names().len());
        }
    }

    #[test]
    fn from_tags_accepts_any_order_and_equals_the_typed_constructor() {
        let typed = Sample::control_panel("LOGIN", Outcome::Ok, "ops");
        let named = Sample::from_tags(
            Family::ControlPanel,
            [
                ("user", "ops"),
                ("operationType", "LOGIN"),
                ("result", "OK"),
            ],
        )
        .unwrap();
        assert_eq!(typed, named);
        assert_eq!(hash_state().hash_one(&typed), hash_state().hash_one(&named));
    }

    #[test]
    fn from_tags_rejects_missing_unknown_and_repeated_tags() {
        let missing = Sample::from_tags(Family::ControlPanel, [("user", "ops"), ("result", "OK")]);
        assert!(matches!(missing, Err(MetricsError::TagSet { .. })));
        let unknown = Sample::from_tags(
            Family::ControlPanel,
            [
                ("user", "ops"),
                ("result", "OK"),
                ("operationType", "LOGIN"),
                ("source", "ENGINE"),
            ],
        );
        assert!(unknown.is_err());
        let repeated = Sample::from_tags(
            Family::QueriesControlPanel,
            [("user", "a"), ("user", "b"), ("result", "OK")],
        );
        let err = repeated.unwrap_err().to_string();
        assert!(err.contains("MetricsQueriesControlPanel"), "{err}");
    }

    #[test]
    fn samples_of_different_families_with_equal_values_differ() {
        let a = Sample::from_tags(
            Family::ControlPanel,
            [("result", "OK"), ("user", "u"), ("operationType", "x")],
        )
        .unwrap();
        let b = Sample::from_tags(
            Family::QueriesControlPanel,
            [("result", "OK"), ("user", "u"), ("ontology", "x")],
        )
        .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn family_names_round_trip() {
        for &f in Family::ALL {
            assert_eq!(f.as_str().parse::<Family>().unwrap(), f);
        }
        assert!("MetricsControPanel".parse::<Family>().is_err());
    }
}
