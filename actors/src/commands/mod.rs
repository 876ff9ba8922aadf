//! What the CommandPoller and the CommandExecutor share: the catalogue of the 47 command types
//! (names, permission flags, one typed record per type) and the durable journal with its status
//! reports.

pub mod catalogue;
pub mod journal;

pub use catalogue::{Command, CommandType};
pub use journal::{CommandRecord, Journal, PendingReport, Status, Transition};
