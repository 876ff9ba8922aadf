//! Observability as typed events (as in Vector's `internal_events`). Each thing worth observing
//! is a struct in [`catalog`]; its `emit()` writes, together, its log line (if it has one), its
//! Prometheus series (the one [`Registry`](prometheus_client::registry::Registry) behind
//! `GET /metrics`, see [`encode`]) and its Onesait time-series count. The log, `/metrics` and the
//! time-series documents therefore cannot drift apart.
//!
//! The Onesait counts go through the [`Recorder`] that the MetricsAggregator installs; until one
//! is installed (early start, unit tests) they are dropped. Emitting never blocks or fails the
//! caller.

mod catalog;
mod process;
mod registry;

use std::sync::{Arc, OnceLock};

pub use crate::metrics_aggregator::Source;
pub use catalog::*;
pub use registry::{
    encode, encode_samples, encode_text, register_collector, Scraped, CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};

/// Receives the Onesait side of every event. Implementations must be cheap and never block.
/// Each method is one sample of one family of the Onesait metrics model (`metrics_aggregator`).
pub trait Recorder: Send + Sync + 'static {
    /// MetricsOperation.
    fn operation(&self, source: Source, operation: &str, ok: bool);
    /// MetricsApi: `result` is the status code or the error kind.
    fn api(&self, route: &str, method: &str, result: &str);
    /// MetricsOntology: `operation` is INSERT, UPDATE or DELETE.
    fn ontology(&self, source: Source, ontology: &str, operation: &str, ok: bool);
    /// MetricsControlPanel.
    fn control_panel(&self, operation: &str, ok: bool, user: &str);
    /// MetricsQueriesControlPanel.
    fn query(&self, resource: &str, ok: bool, user: &str);
}

static RECORDER: OnceLock<Arc<dyn Recorder>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls are ignored).
pub fn set_recorder(recorder: Arc<dyn Recorder>) {
    let _ = RECORDER.set(recorder);
}

/// The Onesait side of an event, if a recorder is installed.
fn onesait(f: impl FnOnce(&dyn Recorder)) {
    if let Some(r) = RECORDER.get() {
        f(r.as_ref());
    }
}
