//! South folder-scanner (OIBus `south-folder-scanner.ts`): the files of `inputFolder` whose
//! name matches an item's `regex`, once they are `minAge` ms old; gzipped with `compression`.
//!
//! With `preserveFiles` the files stay and their modification time is remembered in the store
//! (`Cf::State`, `south/<id>/files/<item id>/<name>`), so a file is sent again only once
//! modified, even across restarts; without it they are deleted once cached. Item settings
//! (`regex`, `minAge`, `preserveFiles`, `ignoreModifiedDate`, `maxFiles`, `maxSize`,
//! `recursive`) win over the same keys in the connector's settings (older OIBus shapes).
//! Everything here blocks: call it on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use regex::Regex;
use serde_json::{json, Map, Value};

use super::{gzip, ConnectorError, SettingsReader};
use crate::entities::SouthItem;
use crate::store::{Cf, Durability, Store};

/// `minAge` when an item does not say (ms), as the manifest.
const DEFAULT_MIN_AGE_MS: u64 = 1000;

pub struct FolderScanner {
    south_id: String,
    label: String,
    input_folder: PathBuf,
    compression: bool,
    /// The connector's settings, under the item's.
    defaults: Map<String, Value>,
    store: Store,
}

/// One file ready for the caches.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    pub item_id: String,
    pub path: PathBuf,
    /// The name relative to the input folder; `.gz` appended after compression.
    pub filename: String,
    pub bytes: Bytes,
    pub modified: SystemTime,
    /// The item's `preserveFiles`: remembered, not deleted, by [`FolderScanner::done`].
    preserve: bool,
    /// The name relative to the input folder, before compression (the memory key).
    name: String,
}

/// An item's settings, read once per scan.
struct ItemRules {
    regex: Regex,
    min_age: Duration,
    preserve: bool,
    ignore_modified_date: bool,
    max_files: u64,
    max_bytes: u64,
    recursive: bool,
}

impl FolderScanner {
    /// `settings`: `{inputFolder, compression}` (and possibly the item settings as defaults).
    pub fn new(
        south_id: &str,
        settings: &Value,
        store: &Store,
    ) -> Result<FolderScanner, ConnectorError> {
        let label = format!("south '{south_id}'");
        let reader = SettingsReader::new(&label, settings);
        Ok(FolderScanner {
            south_id: south_id.to_owned(),
            input_folder: PathBuf::from(reader.required_string("inputFolder")?),
            compression: reader.bool_or("compression", false)?,
            defaults: settings.as_object().cloned().unwrap_or_default(),
            label,
            store: store.clone(),
        })
    }

    /// Files of `item` (its `regex` on the name relative to the input folder) at least `minAge`
    /// old, and, with `preserveFiles`, modified since they were last sent; at most `maxFiles`
    /// files and `maxSize` MB. Blocking.
    pub fn scan(&self, item: &SouthItem) -> Result<Vec<ScannedFile>, ConnectorError> {
        let rules = self.rules(item)?;
        let mut names = Vec::new();
        self.list(&self.input_folder, "", rules.recursive, &mut names)?;
        names.sort();
        let now = SystemTime::now();
        let (mut files, mut total) = (Vec::new(), 0u64);
        for name in names.into_iter().filter(|n| rules.regex.is_match(n)) {
            let path = self.input_folder.join(&name);
            // A file may vanish or change between the listing and here: skip it this time.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            if !self.is_due(item, &name, modified, now, &rules)? {
                continue;
            }
            if rules.max_files > 0 && files.len() as u64 >= rules.max_files {
                break;
            }
            if rules.max_bytes > 0 && total + meta.len() > rules.max_bytes {
                break;
            }
            let raw = match std::fs::read(&path) {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::warn!(south = %self.south_id, path = %path.display(), error = %e, "cannot read a scanned file; it will be tried again");
                    continue;
                }
            };
            total += meta.len();
            let (filename, bytes) = if self.compression {
                let gz = gzip(&raw, flate2::Compression::default().level())
                    .map_err(|e| ConnectorError::io(&self.label, "compress", &path, e))?;
                (format!("{name}.gz"), Bytes::from(gz))
            } else {
                (name.clone(), Bytes::from(raw))
            };
            files.push(ScannedFile {
                item_id: item.id.clone(),
                path,
                filename,
                bytes,
                modified,
                preserve: rules.preserve,
                name,
            });
        }
        Ok(files)
    }

    /// After the files are in the caches: delete them (`preserveFiles` false) or remember their
    /// modification time durably (`preserveFiles` true).
    pub fn done(&self, files: &[ScannedFile]) -> Result<(), ConnectorError> {
        let mut batch = self.store.batch();
        for file in files {
            if file.preserve {
                batch
                    .put(
                        Cf::State,
                        &memory_key(&self.south_id, &file.item_id, &file.name),
                        &millis(file.modified),
                    )
                    .map_err(|source| self.store_error(source))?;
            } else {
                match std::fs::remove_file(&file.path) {
                    Ok(()) => {}
                    // Gone already: nothing left to send twice.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ConnectorError::io(&self.label, "remove", &file.path, e)),
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.store
            .write(batch, Durability::Sync)
            .map_err(|source| self.store_error(source))
    }

    /// The folder exists and is readable → `{items: [Folder, Files]}`, OIBus's texts otherwise.
    pub fn test_connection(&self) -> Result<Value, String> {
        let folder =
            std::path::absolute(&self.input_folder).unwrap_or_else(|_| self.input_folder.clone());
        let shown = folder.display();
        let meta = std::fs::metadata(&folder)
            .map_err(|e| format!("Folder \"{shown}\" does not exist: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("{shown} is not a directory"));
        }
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| format!("Read access error on \"{shown}\": {e}"))?;
        Ok(json!({"items": [
            {"key": "Folder", "value": shown.to_string()},
            {"key": "Files", "value": entries.count().to_string()},
        ]}))
    }

    /// `test-south-item` (OIBus `testItem`): the connection test, then one value per file the
    /// item would take now (its `regex`, old enough): `{pointId: item, timestamp: modified,
    /// data: {value: name}}`. Nothing is read, sent, deleted or remembered. Blocking.
    pub fn test_item(&self, item: &SouthItem) -> Result<Vec<crate::content::TimeValue>, String> {
        self.test_connection()?;
        let rules = self.rules(item).map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        self.list(&self.input_folder, "", rules.recursive, &mut names)
            .map_err(|e| e.to_string())?;
        names.sort();
        let now = SystemTime::now();
        let mut values = Vec::new();
        for name in names.into_iter().filter(|n| rules.regex.is_match(n)) {
            let path = self.input_folder.join(&name);
            let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                continue;
            };
            if modified + rules.min_age > now {
                continue;
            }
            values.push(crate::content::TimeValue {
                point_id: item.name.clone(),
                timestamp: crate::protocol::iso(chrono::DateTime::<chrono::Utc>::from(modified)),
                data: json!({ "value": name }),
            });
        }
        Ok(values)
    }

    /// Forgets what was remembered for a deleted south.
    pub fn forget(store: &Store, south_id: &str) -> Result<(), ConnectorError> {
        let prefix = memory_prefix(south_id);
        let mut end = prefix.clone();
        // The prefix ends with '/': the next byte bounds every key under it.
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut batch = store.batch();
        batch.delete_range(Cf::State, &prefix, &end);
        store
            .write(batch, Durability::Sync)
            .map_err(|source| ConnectorError::Store {
                connector: format!("south '{south_id}'"),
                source,
            })
    }

    fn rules(&self, item: &SouthItem) -> Result<ItemRules, ConnectorError> {
        let mut merged = self.defaults.clone();
        if let Some(own) = item.settings.as_object() {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let merged = Value::Object(merged);
        let label = format!("{} item '{}'", self.label, item.name);
        let reader = SettingsReader::new(&label, &merged);
        let pattern = reader.string_or("regex", ".*")?;
        let regex = Regex::new(&pattern).map_err(|e| ConnectorError::Regex {
            connector: self.label.clone(),
            item: item.name.clone(),
            regex: pattern.clone(),
            reason: e.to_string(),
        })?;
        Ok(ItemRules {
            regex,
            min_age: Duration::from_millis(reader.u64_or("minAge", DEFAULT_MIN_AGE_MS)?),
            preserve: reader.bool_or("preserveFiles", true)?,
            ignore_modified_date: reader.bool_or("ignoreModifiedDate", false)?,
            max_files: reader.u64_or("maxFiles", 0)?,
            max_bytes: reader.u64_or("maxSize", 0)?.saturating_mul(1024 * 1024),
            recursive: reader.bool_or("recursive", false)?,
        })
    }

    /// Old enough, and with `preserveFiles` modified since last sent (OIBus `checkAge`).
    fn is_due(
        &self,
        item: &SouthItem,
        name: &str,
        modified: SystemTime,
        now: SystemTime,
        rules: &ItemRules,
    ) -> Result<bool, ConnectorError> {
        if modified + rules.min_age > now {
            return Ok(false);
        }
        if !rules.preserve || rules.ignore_modified_date {
            return Ok(true);
        }
        let last: Option<u64> = self
            .store
            .get(Cf::State, &memory_key(&self.south_id, &item.id, name))
            .map_err(|source| self.store_error(source))?;
        Ok(millis(modified) > last.unwrap_or(0))
    }

    /// Regular files under `dir`, named relative to the input folder (`sub/name`).
    fn list(
        &self,
        dir: &Path,
        relative: &str,
        recursive: bool,
        out: &mut Vec<String>,
    ) -> Result<(), ConnectorError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ConnectorError::io(&self.label, "read the folder", dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| ConnectorError::io(&self.label, "read the folder", dir, e))?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            if kind.is_dir() && recursive {
                self.list(&entry.path(), &name, recursive, out)?;
            } else if kind.is_file() {
                out.push(name);
            }
        }
        Ok(())
    }

    fn store_error(&self, source: crate::store::StoreError) -> ConnectorError {
        ConnectorError::Store {
            connector: self.label.clone(),
            source,
        }
    }
}

fn memory_prefix(south_id: &str) -> Vec<u8> {
    format!("south/{south_id}/files/").into_bytes()
}

fn memory_key(south_id: &str, item_id: &str, name: &str) -> Vec<u8> {
    let mut key = memory_prefix(south_id);
    key.extend_from_slice(format!("{item_id}/{name}").as_bytes());
    key
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
