//! The sources a south can read: one variant per south type this agent runs. Any other type
//! keeps its configuration but never runs, and says so in its status and `test-*` results.

use std::sync::Arc;

use serde_json::Value;

use crate::connectors::south_folder_scanner::FolderScanner;
use crate::content::Content;
use crate::data_flow::router::Router;
use crate::data_flow::transform::{ItemIndex, Origin};
use crate::entities::{SouthConnector, SouthItem};
use crate::store::Store;

/// What a south of `south_type` that this agent cannot run says.
pub fn unsupported(south_type: &str) -> String {
    format!("South type '{south_type}' is not supported by this agent")
}

#[derive(Clone)]
pub enum SouthDriver {
    FolderScanner(Arc<FolderScanner>),
}

/// What one read of one item gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReadSummary {
    /// Files or values handed to the fan-out and committed.
    pub read: usize,
    /// Elements or files now in north caches (summed over the norths).
    pub cached: usize,
    pub dropped_full: usize,
}

impl SouthDriver {
    pub fn new(south: &SouthConnector, store: &Store) -> Result<SouthDriver, String> {
        match south.connector_type.as_str() {
            "folder-scanner" => FolderScanner::new(&south.id, &south.settings, store)
                .map(|s| SouthDriver::FolderScanner(Arc::new(s)))
                .map_err(|e| e.to_string()),
            other => Err(unsupported(other)),
        }
    }

    pub fn supports(south_type: &str) -> bool {
        south_type == "folder-scanner"
    }

    /// Read `item` and commit what it gave to the caches, then acknowledge the read. Blocking:
    /// run it on a blocking thread.
    pub fn read_blocking(
        &self,
        south_id: &str,
        item: &SouthItem,
        items: &ItemIndex,
        router: &Router,
    ) -> Result<ReadSummary, String> {
        match self {
            SouthDriver::FolderScanner(scanner) => {
                let files = scanner.scan(item).map_err(|e| e.to_string())?;
                let mut summary = ReadSummary::default();
                let mut committed = Vec::with_capacity(files.len());
                for file in files {
                    let content = Content::File {
                        filename: file.filename.clone(),
                        bytes: file.bytes.clone(),
                    };
                    let origin = Origin::South { south_id, items };
                    match router.dispatch(origin, &content) {
                        Ok(done) => {
                            summary.read += 1;
                            summary.cached += done.cached;
                            summary.dropped_full += done.dropped_full;
                            committed.push(file);
                        }
                        // Not committed: the file stays where it is and is read again.
                        Err(e) => {
                            scanner.done(&committed).map_err(|e| e.to_string())?;
                            return Err(format!("cannot cache {}: {e}", file.filename));
                        }
                    }
                }
                scanner.done(&committed).map_err(|e| e.to_string())?;
                Ok(summary)
            }
        }
    }

    /// `test-south-connection`.
    pub fn test_connection(&self) -> Result<Value, String> {
        match self {
            SouthDriver::FolderScanner(scanner) => scanner.test_connection(),
        }
    }

    /// Forget what the south remembered (it was deleted).
    pub fn forget(south: &SouthConnector, store: &Store) {
        if south.connector_type == "folder-scanner" {
            if let Err(e) = FolderScanner::forget(store, &south.id) {
                tracing::warn!(south = %south.name, error = %e, "cannot forget the deleted south's file memory");
            }
        }
    }
}
