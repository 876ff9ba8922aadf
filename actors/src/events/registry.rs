//! The process-wide Prometheus registry: the families the events of [`super::catalog`] update,
//! build info, process metrics, and the values other parts own, read at scrape time
//! ([`Scraped`]).

use std::fmt;
use std::sync::{LazyLock, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What `GET /metrics` answers with (the encoder writes OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Request {
    pub route: String,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Response {
    pub route: String,
    pub method: &'static str,
    /// The status code, or the failure kind (`timeout`, `connect`, …).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Command {
    pub r#type: String,
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
    pub operation: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Actor {
    pub actor: &'static str,
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
            "The agent's version and the OIBus version it stands in for; always 1.",
            build,
        );
        r.register(
            "oibus_agent_oia_requests",
            "HTTP calls to OIAnalytics, by route, method and result (status code or failure kind).",
            m.oia_requests.clone(),
        );
        r.register(
            "oibus_agent_oia_request_duration_seconds",
            "Duration of HTTP calls to OIAnalytics, whatever their result.",
            m.oia_request_duration.clone(),
        );
        r.register("oibus_agent_commands", "Commands that finished, by type and result (completed, errored, or exit when the command stops the engine).", m.commands.clone());
        r.register(
            "oibus_agent_commands_cancelled",
            "Commands cancelled by OIAnalytics before they ran.",
            m.commands_cancelled.clone(),
        );
        r.register(
            "oibus_agent_commands_without_id",
            "Pending commands skipped because they had no usable id (they cannot be reported).",
            m.commands_without_id.clone(),
        );
        r.register(
            "oibus_agent_status_report_puts",
            "Status report batches sent to OIAnalytics, by result.",
            m.status_report_puts.clone(),
        );
        r.register(
            "oibus_agent_status_reports_refused",
            "Status reports OIAnalytics refused one by one (400) and that were dropped.",
            m.status_reports_refused.clone(),
        );
        r.register(
            "oibus_agent_poll_cycles",
            "Command poll cycles (cancellation check, fetch, journal), by result.",
            m.poll_cycles.clone(),
        );
        r.register(
            "oibus_agent_entity_changes",
            "Entities changed by commands, by entity and operation.",
            m.entity_changes.clone(),
        );
        r.register(
            "oibus_agent_registration_steps",
            "Registration steps, by step and result.",
            m.registration_steps.clone(),
        );
        r.register(
            "oibus_agent_config_pushes",
            "Configuration messages sent to OIAnalytics, by kind and result.",
            m.config_pushes.clone(),
        );
        r.register(
            "oibus_agent_local_api_requests",
            "Local API calls that change state or query metrics, by operation and result.",
            m.local_api_requests.clone(),
        );
        r.register(
            "oibus_agent_actor_restarts",
            "Restarts of each supervised actor.",
            m.actor_restarts.clone(),
        );
        r.register(
            "oibus_agent_last_success_timestamp_seconds",
            "Unix time of the last successful round of each loop.",
            m.last_success.clone(),
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
        let samples: Vec<([(&str, &str); 0], u64)> =
            (self.read)().map(|v| ([], v)).into_iter().collect();
        encode_samples(&mut encoder, self.name, self.help, self.kind, &samples)
    }
}

/// Writes one counter or gauge family whose values are read, not kept, by this registry (for
/// a [`Collector`]). Counter names go without `_total`: the encoder appends it.
pub fn encode_samples<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(L, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?,
        }
    }
    Ok(())
}
