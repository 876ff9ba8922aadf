//! The data plane's supervisor (DESIGN.md "Data plane"): which souths and norths run, the
//! scan-mode schedules that drive them, and the fan-out from souths to the norths' caches.

pub mod actor;
pub mod item_test;
pub mod json_path;
pub mod router;
pub mod schedule;
pub mod transform;

pub use actor::{DataCommand, DataFlow, DataFlowStatus, GetDataFlowStatus, Reconcile};
