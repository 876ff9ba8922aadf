//! The process-wide Prometheus registry: the families the events of [`super::catalog`] update,
//! build info, process metrics, and the values other parts own, read at scrape time
//! ([`Scraped`]).

use std::fmt;
use std::sync::{LazyLock, Mutex};

use prometheus_client::collector::Collector;
use std::fmt::Write as _;

use prometheus_client::encoding::{
    text, DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What `GET /metrics` answers a scraper that asks for OpenMetrics (Prometheus does).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What it answers anyone else (`curl`, `promtool check metrics`): Prometheus' text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Request {
    pub route: Text,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Response {
    pub route: Text,
    pub method: &'static str,
    /// The status code, or the failure kind (`timeout`, `connect`, …).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Command {
    pub r#type: Text,
    /// The final status in lower case, or `exit`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Change {
    pub entity: &'static str,
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Step {
    pub step: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Outcome {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Push {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LocalCall {
    pub operation: Text,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Actor {
    pub actor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Connector {
    /// The connector's name, as OIAnalytics shows it.
    pub connector: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ConnectorOutcome {
    pub connector: Text,
    pub result: &'static str,
}

/// The loops whose last success is a timestamp (`oibus_agent_last_success_timestamp_seconds`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Loop {
    pub r#loop: LoopName,
}

#[derive(
    Clone, Copy, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)] // the variants are the label values
pub(super) enum LoopName {
    poll_cycle,
    status_report_flush,
    message_push,
    log_shipping,
    north_send,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
    oibus_version: &'static str,
}

/// The families events update. Each field's registered name is in [`Metrics::new`].
pub(super) struct Metrics {
    registry: Mutex<Registry>,
    pub oia_requests: Family<Response, Counter>,
    pub oia_request_duration: Family<Request, Histogram>,
    pub commands: Family<Command, Counter>,
    pub commands_cancelled: Counter,
    pub commands_without_id: Counter,
    pub status_report_puts: Family<Outcome, Counter>,
    pub status_reports_refused: Counter,
    pub poll_cycles: Family<Outcome, Counter>,
    pub entity_changes: Family<Change, Counter>,
    pub registration_steps: Family<Step, Counter>,
    pub config_pushes: Family<Push, Counter>,
    pub local_api_requests: Family<LocalCall, Counter>,
    pub actor_restarts: Family<Actor, Counter>,
    pub last_success: Family<Loop, Gauge>,
    pub data_cached: Family<Connector, Counter>,
    pub data_sent: Family<Connector, Counter>,
    pub data_dropped: Family<ConnectorOutcome, Counter>,
    pub north_sends: Family<ConnectorOutcome, Counter>,
    pub north_send_duration: Family<Connector, Histogram>,
    pub south_reads: Family<ConnectorOutcome, Counter>,
    pub south_scans_skipped: Family<Connector, Counter>,
}

/// OIA round trips: 5 ms to about 41 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            oia_requests: Family::default(),
            oia_request_duration: Family::new_with_constructor(request_buckets),
            commands: Family::default(),
            commands_cancelled: Counter::default(),
            commands_without_id: Counter::default(),
            status_report_puts: Family::default(),
            status_reports_refused: Counter::default(),
            poll_cycles: Family::default(),
            entity_changes: Family::default(),
            registration_steps: Family::default(),
            config_pushes: Family::default(),
            local_api_requests: Family::default(),
            actor_restarts: Family::default(),
            last_success: Family::default(),
            data_cached: Family::default(),
            data_sent: Family::default(),
            data_dropped: Family::default(),
            north_sends: Family::default(),
            north_send_duration: Family::new_with_constructor(request_buckets),
            south_reads: Family::default(),
            south_scans_skipped: Family::default(),
        };
        let mut r = m.lock();
        let build = Family::<Build, Gauge>::default();
        build
            .get_or_create(&Build {
                version: crate::VERSION,
                oibus_version: crate::COMPATIBLE_OIBUS_VERSION,
            })
            .set(1);
        // Counters are registered without `_total`: the encoder appends it.
        r.register(
            "oibus_agent_build_info",
            "The agent's version and the OIBus version it stands in for; always 1",
            build,
        );
        r.register(
            "oibus_agent_oia_requests",
            "HTTP calls to OIAnalytics, by route, method and result (status code or failure kind)",
            m.oia_requests.clone(),
        );
        r.register(
            "oibus_agent_oia_request_duration_seconds",
            "Duration of HTTP calls to OIAnalytics, whatever their result",
            m.oia_request_duration.clone(),
        );
        r.register("oibus_agent_commands", "Commands that finished, by type and result (completed, errored, or exit when the command stops the engine)", m.commands.clone());
        r.register(
            "oibus_agent_commands_cancelled",
            "Commands cancelled by OIAnalytics before they ran",
            m.commands_cancelled.clone(),
        );
        r.register(
            "oibus_agent_commands_without_id",
            "Pending commands skipped because they had no usable id (they cannot be reported)",
            m.commands_without_id.clone(),
        );
        r.register(
            "oibus_agent_status_report_puts",
            "Status report batches sent to OIAnalytics, by result",
            m.status_report_puts.clone(),
        );
        r.register(
            "oibus_agent_status_reports_refused",
            "Status reports OIAnalytics refused one by one (400) and that were dropped",
            m.status_reports_refused.clone(),
        );
        r.register(
            "oibus_agent_poll_cycles",
            "Command poll cycles (cancellation check, fetch, journal), by result",
            m.poll_cycles.clone(),
        );
        r.register(
            "oibus_agent_entity_changes",
            "Entities changed by commands, by entity and operation",
            m.entity_changes.clone(),
        );
        r.register(
            "oibus_agent_registration_steps",
            "Registration steps, by step and result",
            m.registration_steps.clone(),
        );
        r.register(
            "oibus_agent_config_pushes",
            "Configuration messages sent to OIAnalytics, by kind and result",
            m.config_pushes.clone(),
        );
        r.register(
            "oibus_agent_local_api_requests",
            "Local API calls that change state or query metrics, by operation and result",
            m.local_api_requests.clone(),
        );
        r.register(
            "oibus_agent_actor_restarts",
            "Restarts of each supervised actor",
            m.actor_restarts.clone(),
        );
        r.register(
            "oibus_agent_last_success_timestamp_seconds",
            "Unix time of the last successful round of each loop",
            m.last_success.clone(),
        );
        r.register(
            "oibus_agent_data_cached",
            "Values, messages or files committed to a north's cache, by north",
            m.data_cached.clone(),
        );
        r.register(
            "oibus_agent_data_sent",
            "Values, messages or files a north delivered (2xx), by north",
            m.data_sent.clone(),
        );
        r.register(
            "oibus_agent_data_dropped",
            "Content not cached, by north and reason (cache_full: maxSize reached; transformer: no runtime for it)",
            m.data_dropped.clone(),
        );
        r.register(
            "oibus_agent_north_sends",
            "Send attempts of the norths, by north and result (sent, retry, failed, moved_to_error)",
            m.north_sends.clone(),
        );
        r.register(
            "oibus_agent_north_send_duration_seconds",
            "Duration of the norths' send attempts, whatever their result",
            m.north_send_duration.clone(),
        );
        r.register(
            "oibus_agent_south_reads",
            "Item reads of the souths, by south and result",
            m.south_reads.clone(),
        );
        r.register(
            "oibus_agent_south_scans_skipped",
            "Scans skipped because the previous read of the item was still running (backpressure), by south",
            m.south_scans_skipped.clone(),
        );
        r.register_collector(Box::new(super::process::Process));
        drop(r);
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry holds no invariant a panicking holder could break.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Add a collector read at every scrape (values owned elsewhere: the store, the journal, the
/// log shipper). Call it once per process for each collector.
pub fn register_collector(collector: impl Collector) {
    METRICS.lock().register_collector(Box::new(collector));
}

/// Every metric, as OpenMetrics text.
pub fn encode() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text::encode(&mut out, &METRICS.lock());
    out
}

/// Every metric in Prometheus' text format 0.0.4, as Prometheus' own clients answer a scrape
/// that does not ask for OpenMetrics. The two differ only in what this registry writes as:
/// 0.0.4 names a counter family after its `_total` samples, and has no `# UNIT` or `# EOF`.
pub fn encode_text() -> String {
    text_of_open_metrics(&encode())
}

fn text_of_open_metrics(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // The encoder writes HELP before TYPE; the type decides the name both lines carry.
    let mut help = None;
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ');
            continue;
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' ')) {
            let suffix = if kind == "counter" { "_total" } else { "" };
            if let Some((_, text)) = help.take() {
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A counter or gauge without labels whose value something else owns, read at every scrape,
/// e.g. `Scraped::counter("oibus_agent_store_quarantined", "…", move || store.quarantined())`.
pub struct Scraped {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    /// `None` when the value is unknown: then the family has no sample.
    read: Box<dyn Fn() -> Option<u64> + Send + Sync>,
}

impl Scraped {
    /// A counter (`name` without `_total`).
    pub fn counter(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Scraped {
        Scraped {
            name,
            help,
            kind: MetricType::Counter,
            read: Box::new(move || Some(read())),
        }
    }

    /// A gauge.
    pub fn gauge(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Scraped {
        Scraped {
            name,
            help,
            kind: MetricType::Gauge,
            read: Box::new(read),
        }
    }
}

impl fmt::Debug for Scraped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scraped").field("name", &self.name).finish()
    }
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let samples: Vec<(&[(&str, &str)], u64)> =
            (self.read)().map(|v| (&[][..], v)).into_iter().collect();
        encode_samples(&mut encoder, self.name, self.help, self.kind, &samples)
    }
}

/// Writes one counter or gauge family whose values are read, not kept, by this registry (for
/// a [`Collector`]). Counter names go without `_total`: the encoder appends it. Label values
/// must need no escaping.
pub fn encode_samples(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(&[(&str, &str)], u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    let write = |value: u64, sample: MetricEncoder| match kind {
        MetricType::Counter => ConstCounter::new(value).encode(sample),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample),
    };
    match samples {
        // An empty label set would be written `{}`.
        [([], value)] => write(*value, metric),
        _ => samples
            .iter()
            .try_for_each(|(labels, value)| write(*value, metric.encode_family(labels)?)),
    }
}

/// A label value from outside (a route, a command type): prometheus-client writes label
/// values as they are, so `\`, `"` and line feeds are escaped here.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(super) struct Text(pub String);

impl EncodeLabelValue for Text {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::super::catalog::*;
    use super::*;

    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Splits `name{labels} value` into the name, the label pairs and the value, checking the
    /// label names and that values escape only `\\`, `\"` and `\n`.
    type Labels = Vec<(String, String)>;

    fn sample(line: &str) -> Result<(&str, Labels, f64), String> {
        let (head, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
        let Some((name, labels)) = head.split_once('{') else {
            return Ok((head, Vec::new(), value));
        };
        let labels = labels
            .strip_suffix('}')
            .ok_or(format!("unclosed labels: {line}"))?;
        let mut pairs = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").ok_or(format!("bad label: {line}"))?;
            if !valid_name(key) || key.contains(':') {
                return Err(format!("bad label name {key:?}: {line}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars
                    .next()
                    .ok_or(format!("unterminated label value: {line}"))?
                {
                    (_, '\\') => match chars.next() {
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err(format!("bad escape: {line}")),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            pairs.push((key.to_string(), value));
            rest = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        Ok((name, pairs, value))
    }

    /// The exposition rules `promtool check metrics` enforces, on OpenMetrics text.
    fn check_exposition(text: &str) -> Result<(), String> {
        let mut types: HashMap<&str, &str> = HashMap::new();
        let mut helps = HashSet::new();
        let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
        let mut counts: HashMap<String, f64> = HashMap::new();
        if !text.ends_with("# EOF\n") {
            return Err("no # EOF at the end".into());
        }
        for line in text.lines().filter(|l| *l != "# EOF") {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !helps.insert(name) {
                    return Err(format!("HELP twice for {name}"));
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
                if !valid_name(name) || types.insert(name, kind).is_some() {
                    return Err(format!("bad or repeated TYPE: {line}"));
                }
                if !helps.contains(name) {
                    return Err(format!("TYPE without HELP: {line}"));
                }
            } else {
                let (name, labels, value) = sample(line)?;
                let (family, suffix) = types
                    .keys()
                    .filter_map(|f| Some((*f, name.strip_prefix(f)?)))
                    .max_by_key(|(f, _)| f.len())
                    .ok_or(format!("sample of no declared family: {line}"))?;
                let allowed: &[&str] = match types[family] {
                    "counter" => &["_total"],
                    "gauge" => &[""],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    kind => return Err(format!("unexpected type {kind}: {line}")),
                };
                if !allowed.contains(&suffix) {
                    return Err(format!("{name} does not fit its {family} family"));
                }
                let series: Vec<_> = labels.iter().filter(|(k, _)| k != "le").collect();
                let key = format!("{family}{series:?}");
                if suffix == "_bucket" {
                    let le = labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .ok_or("bucket without le")?;
                    let le: f64 = if le.1 == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.1.parse().map_err(|_| "bad le")?
                    };
                    let (last_le, last) = buckets.get(&key).copied().unwrap_or((f64::MIN, 0.0));
                    if le <= last_le || value < last {
                        return Err(format!("buckets not monotonic: {line}"));
                    }
                    buckets.insert(key, (le, value));
                } else if suffix == "_count" {
                    counts.insert(key, value);
                }
            }
        }
        for (key, count) in counts {
            match buckets.get(&key) {
                Some((le, n)) if *le == f64::INFINITY && *n == count => {}
                _ => return Err(format!("{key}: no +Inf bucket equal to _count")),
            }
        }
        Ok(())
    }

    #[test]
    fn the_exposition_follows_the_format_rules_promtool_checks() {
        OiaRequestCompleted {
            route: "/api/oianalytics/oibus/commands/pending",
            method: "GET",
            result: "200",
            elapsed: std::time::Duration::from_millis(42),
        }
        .emit();
        LocalQueryServed {
            resource: "odd \"name\"\\ with\nnewline",
            ok: true,
            user: "ops",
        }
        .emit();
        PollCycleFinished { error: None }.emit();
        ActorSupervised {
            actor: "registration",
        }
        .emit();
        let text = encode();
        check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for expected in [
            "oibus_agent_build_info{version=\"",
            "oibus_agent_oia_request_duration_seconds_bucket{le=\"+Inf\",route=\"/api/oianalytics/oibus/commands/pending\",method=\"GET\"} 1",
            "oibus_agent_oia_requests_total{route=\"/api/oianalytics/oibus/commands/pending\",method=\"GET\",result=\"200\"}",
            "oibus_agent_last_success_timestamp_seconds{loop=\"poll_cycle\"}",
            "oibus_agent_actor_restarts_total{actor=\"registration\"} 0",
            r#"oibus_agent_local_api_requests_total{operation="odd \"name\"\\ with\nnewline",result="ok"}"#,
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_has_no_unit_or_eof() {
        let open_metrics = "# HELP a_b Calls.\n# TYPE a_b counter\na_b_total{l=\"x\"} 1\n\
            # HELP g_seconds Age.\n# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds 2\n# EOF\n";
        assert_eq!(
            text_of_open_metrics(open_metrics),
            "# HELP a_b_total Calls.\n# TYPE a_b_total counter\na_b_total{l=\"x\"} 1\n\
             # HELP g_seconds Age.\n# TYPE g_seconds gauge\ng_seconds 2\n"
        );
    }

    #[test]
    fn the_checker_refuses_what_promtool_refuses() {
        let ok = "# HELP a_b x\n# TYPE a_b counter\na_b_total 1\n# EOF\n";
        assert_eq!(check_exposition(ok), Ok(()));
        for bad in [
            "# HELP a_b x\n# TYPE a_b counter\na_b 1\n# EOF\n",
            "# HELP a_b x\n# TYPE a_b counter\n# HELP a_b x\n# EOF\n",
            "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n# EOF\n",
            "# HELP a x\n# TYPE a gauge\na{l=\"\\q\"} 1\n# EOF\n",
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n# EOF\n",
            "# HELP h x\n# TYPE h histogram\nh_count 2\nh_bucket{le=\"1\"} 2\n# EOF\n",
        ] {
            assert!(check_exposition(bad).is_err(), "accepted:\n{bad}");
        }
    }
}
