//! What the command intake, executor and reporter share: the catalogue of the 47 command types
//! (names, permission flags, one typed record per type) and the durable journal with its status
//! reports.

pub mod catalogue;
pub mod journal;

pub use catalogue::{Command, CommandType};
pub use journal::{CommandRecord, Journal, PendingReport, Reporting, Status, Transition};

use crate::store::StoreError;

/// Run a journal call that waits for the disk on a blocking thread, off the actors' thread.
/// The outer `Err` only when that thread failed (a panic in the store call, i.e. a bug, or a
/// runtime shutdown).
pub async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, String> {
    actix_rt::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("store worker thread failed: {e}"))
}
