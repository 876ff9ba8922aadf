//! One running south connector: at each tick of a scan mode it reads the items of that scan
//! mode, hands what it read to the fan-out, and acknowledges its read (deletes the file, keeps
//! its modification time) only once every north's cache has it. An item still being read when
//! its next tick comes is skipped and counted (backpressure), never queued.
//!
//! This file holds the decisions; `actor.rs` the actix shell; `driver.rs` the sources.

pub mod actor;
pub mod driver;

use crate::entities::{SouthConnector, SouthItem};

pub use actor::{
    GetSouthStatus, Received, ScanTick, SouthConnectorActor, SouthStatus, SubscriptionFailed,
};
pub use driver::SouthDriver;

/// The scan mode an item is read at: its group's when it is synchronised with it, else its
/// own. `None` when neither is set.
pub fn item_scan_mode<'a>(south: &'a SouthConnector, item: &'a SouthItem) -> Option<&'a str> {
    let synced = item
        .other
        .get("syncWithGroup")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if synced {
        let group = item
            .group_id
            .as_deref()
            .and_then(|g| south.groups.iter().find(|group| group.id == g));
        if let Some(scan_mode) = group.and_then(|g| {
            g.other
                .get("standardSettings")
                .and_then(|s| s.get("scanModeId"))
                .and_then(serde_json::Value::as_str)
        }) {
            return Some(scan_mode);
        }
    }
    item.scan_mode_id.as_deref()
}

/// The enabled items of `south` read at `scan_mode`.
pub fn items_of<'a>(
    south: &'a SouthConnector,
    scan_mode: &'a str,
) -> impl Iterator<Item = &'a SouthItem> {
    south
        .items
        .iter()
        .filter(move |item| item.enabled && item_scan_mode(south, item) == Some(scan_mode))
}

/// Every scan mode the enabled items of `south` use.
pub fn scan_modes(south: &SouthConnector) -> Vec<String> {
    let mut modes: Vec<String> = south
        .items
        .iter()
        .filter(|item| item.enabled)
        .filter_map(|item| item_scan_mode(south, item).map(str::to_owned))
        .collect();
    modes.sort();
    modes.dedup();
    modes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{Audit, SouthGroup};
    use serde_json::json;

    fn item(id: &str, scan_mode: &str, group: Option<&str>, synced: bool) -> SouthItem {
        SouthItem {
            id: id.into(),
            name: id.into(),
            enabled: true,
            settings: json!({}),
            scan_mode_id: Some(scan_mode.into()),
            group_id: group.map(Into::into),
            other: json!({"syncWithGroup": synced})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            audit: Audit::new("", ""),
        }
    }

    fn south(items: Vec<SouthItem>) -> SouthConnector {
        SouthConnector {
            id: "s".into(),
            name: "s".into(),
            connector_type: "folder-scanner".into(),
            description: String::new(),
            enabled: true,
            settings: json!({}),
            items,
            groups: vec![SouthGroup {
                id: "g".into(),
                other: json!({"standardSettings": {"name": "g", "scanModeId": "hourly"}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }],
            secret_paths: vec![],
            audit: Audit::new("", ""),
        }
    }

    #[test]
    fn an_item_synchronised_with_its_group_takes_the_group_scan_mode() {
        let s = south(vec![
            item("a", "second", Some("g"), true),
            item("b", "second", Some("g"), false),
        ]);
        assert_eq!(item_scan_mode(&s, &s.items[0]), Some("hourly"));
        assert_eq!(item_scan_mode(&s, &s.items[1]), Some("second"));
        assert_eq!(
            scan_modes(&s),
            vec!["hourly".to_owned(), "second".to_owned()]
        );
        let second: Vec<&str> = items_of(&s, "second").map(|i| i.id.as_str()).collect();
        assert_eq!(second, vec!["b"]);
    }

    #[test]
    fn disabled_items_are_never_read() {
        let mut s = south(vec![item("a", "second", None, false)]);
        s.items[0].enabled = false;
        assert!(scan_modes(&s).is_empty());
        assert_eq!(items_of(&s, "second").count(), 0);
    }
}
