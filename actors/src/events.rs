//! The counting side of observability. Actors report what they did through these functions;
//! the MetricsAggregator installs the [`Recorder`] that turns them into time-series counts and
//! Prometheus counters. Until one is installed (early start, unit tests) they are no-ops, so
//! counting never blocks or fails the caller.
//!
//! Each call is one sample of one family of the Onesait metrics model (see
//! `metrics_aggregator`): `operation` → MetricsOperation, `api` → MetricsApi, `ontology` →
//! MetricsOntology, `control_panel` → MetricsControlPanel, `query` → MetricsQueriesControlPanel.

use std::sync::{Arc, OnceLock};

pub use crate::metrics_aggregator::Source;

/// Receives every count. Implementations must be cheap and never block.
pub trait Recorder: Send + Sync + 'static {
    fn operation(&self, source: Source, operation: &str, ok: bool);
    fn api(&self, route: &str, method: &str, result: &str);
    fn ontology(&self, source: Source, ontology: &str, operation: &str, ok: bool);
    fn control_panel(&self, operation: &str, ok: bool, user: &str);
    fn query(&self, resource: &str, ok: bool, user: &str);
}

static RECORDER: OnceLock<Arc<dyn Recorder>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls are ignored).
pub fn set_recorder(recorder: Arc<dyn Recorder>) {
    let _ = RECORDER.set(recorder);
}

fn with(f: impl FnOnce(&dyn Recorder)) {
    if let Some(r) = RECORDER.get() {
        f(r.as_ref());
    }
}

/// An operation of an actor (MetricsOperation).
pub fn operation(source: Source, operation: &str, ok: bool) {
    with(|r| r.operation(source, operation, ok));
}

/// One HTTP call to OIAnalytics (MetricsApi): `result` is the status code or the error kind.
pub fn api(route: &str, method: &str, result: &str) {
    with(|r| r.api(route, method, result));
}

/// A change to a stored entity (MetricsOntology): `operation` is INSERT, UPDATE or DELETE.
pub fn ontology(source: Source, ontology: &str, operation: &str, ok: bool) {
    with(|r| r.ontology(source, ontology, operation, ok));
}

/// A state-changing local control-plane operation (MetricsControlPanel).
pub fn control_panel(operation: &str, ok: bool, user: &str) {
    with(|r| r.control_panel(operation, ok, user));
}

/// A query served by the local API (MetricsQueriesControlPanel).
pub fn query(resource: &str, ok: bool, user: &str) {
    with(|r| r.query(resource, ok, user));
}
