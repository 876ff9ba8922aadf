//! The three cache commands OIAnalytics sends for a north or a history query
//! (`search-north-cache-content`, `get-north-cache-file-content`, `update-north-cache-content`),
//! with OIBus's result shapes (`cache.service.ts`, `utils.ts`). Entries are addressed by their
//! 12-character name, as OIBus addresses its metadata files.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{keys, Area, CacheError, Metadata, NorthCache, Plan};
use crate::store::Cf;

/// OIBus's `processCacheFileContent` limit.
const FILE_CONTENT_LIMIT: usize = 500 * 1024;

/// The `search-north-cache-content` filter, read flat from the command content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchQuery {
    /// Entries created at or after (ISO 8601).
    pub start: Option<String>,
    /// Entries created at or before (ISO 8601).
    pub end: Option<String>,
    /// Case-insensitive part of the entry's name or of its `contentFile`.
    pub name_contains: Option<String>,
    /// At most this many entries per area; 0 = all.
    pub max_number_of_files_returned: usize,
}

impl SearchQuery {
    fn matches(&self, name: &str, meta: &Metadata) -> bool {
        let name_ok = self.name_contains.as_deref().is_none_or(|part| {
            let part = part.to_uppercase();
            name.to_uppercase().contains(&part) || meta.content_file.to_uppercase().contains(&part)
        });
        let after_start =
            (self.start.as_deref()).is_none_or(|start| later_or_equal(&meta.created_at, start));
        let before_end =
            (self.end.as_deref()).is_none_or(|end| later_or_equal(end, &meta.created_at));
        name_ok && after_start && before_end
    }
}

/// `a >= b` as instants when both parse, else as strings (what OIBus does with ISO strings).
fn later_or_equal(a: &str, b: &str) -> bool {
    match (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a >= b,
        _ => a >= b,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Update {
    cache: AreaUpdate,
    error: AreaUpdate,
    archive: AreaUpdate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AreaUpdate {
    remove: Vec<String>,
    #[serde(rename = "move")]
    moves: Vec<Move>,
}

#[derive(Debug, Deserialize)]
struct Move {
    filename: String,
    to: Area,
}

/// OIBus's `determineContentTypeFromFilename`: by the extension of the last path segment (a
/// leading dot is not an extension).
fn content_type_of(filename: &str) -> &'static str {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    match base.rfind('.').filter(|&at| at > 0).map(|at| &base[at..]) {
        Some(".csv") => "csv",
        Some(".json") => "json",
        Some(".xml") => "xml",
        _ => "raw",
    }
}

impl NorthCache {
    /// `search-north-cache-content`: `{searchDate, metrics, cache[], error[], archive[]}`, each
    /// entry `{filename, metadata}`, in arrival order. The run figures of `metrics`
    /// (`lastConnection`, `lastRunStart`, `lastRunDuration`) are the north's, not the cache's:
    /// they are `null` here for the caller to fill.
    pub fn search(&self, query: &SearchQuery) -> Result<Value, CacheError> {
        let limit = match query.max_number_of_files_returned {
            0 => usize::MAX,
            n => n,
        };
        let mut result = json!({ "searchDate": crate::protocol::iso_now() });
        for area in Area::ALL {
            let mut found = Vec::new();
            self.for_each_meta(area, 0, |seq, meta| {
                let name = keys::name_of(seq);
                if query.matches(&name, &meta) {
                    found.push(json!({ "filename": name, "metadata": meta }));
                }
                Ok(found.len() < limit)
            })?;
            result[area.as_str()] = Value::Array(found);
        }
        let stats = self.stats();
        result["metrics"] = json!({
            "lastConnection": null,
            "lastRunStart": null,
            "lastRunDuration": null,
            "currentCacheSize": stats.cache_bytes,
            "currentErrorSize": stats.error_bytes,
            "currentArchiveSize": stats.archive_bytes,
        });
        Ok(result)
    }

    /// `get-north-cache-file-content`: `{content, contentFilename, totalSize, truncated,
    /// contentType}`, the content cut at 500 KiB and read as UTF-8 (invalid bytes replaced).
    pub fn file_content(&self, folder: Area, filename: &str) -> Result<Value, CacheError> {
        let inner = &self.inner;
        let not_found = || CacheError::NotFound {
            owner: inner.owner.clone(),
            area: folder,
            filename: filename.to_owned(),
        };
        let seq = keys::seq_of_name(filename).ok_or_else(not_found)?;
        let meta = Plan::new(self).get(folder, seq)?.ok_or_else(not_found)?;
        let bytes = inner
            .store
            .get_raw(Cf::NorthCache, &keys::content_key(&inner.prefix, seq))?
            .ok_or_else(not_found)?;
        let truncated = bytes.len() > FILE_CONTENT_LIMIT;
        let shown = &bytes[..bytes.len().min(FILE_CONTENT_LIMIT)];
        Ok(json!({
            "content": String::from_utf8_lossy(shown),
            "contentFilename": meta.content_file,
            "totalSize": meta.content_size,
            "truncated": truncated,
            "contentType": content_type_of(&meta.content_file),
        }))
    }

    /// `update-north-cache-content` (`{cache|error|archive: {remove: [name], move: [{filename,
    /// to}]}}`): every removal first, then the moves, in one synced write. A name that is not in
    /// its area is skipped with a warning, as OIBus logs it and carries on.
    pub fn update(&self, changes: &Value) -> Result<(), CacheError> {
        let update: Update =
            serde_path_to_error::deserialize(changes).map_err(|e| CacheError::Command {
                command: "update-north-cache-content",
                field: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        let per_area = [
            (Area::Cache, &update.cache),
            (Area::Error, &update.error),
            (Area::Archive, &update.archive),
        ];
        let _ops = super::lock(&self.inner.ops);
        let mut plan = Plan::new(self);
        for (area, ops) in per_area {
            for name in &ops.remove {
                if let Some((seq, meta)) = self.planned_entry(&mut plan, area, name)? {
                    plan.remove(area, seq, meta);
                }
            }
        }
        for (area, ops) in per_area {
            for op in &ops.moves {
                if op.to == area {
                    continue;
                }
                if let Some((seq, mut meta)) = self.planned_entry(&mut plan, area, &op.filename)? {
                    if op.to != Area::Error {
                        meta.error = None;
                    }
                    plan.relocate(area, op.to, seq, meta)?;
                }
            }
        }
        plan.commit()
    }

    fn planned_entry(
        &self,
        plan: &mut Plan<'_>,
        area: Area,
        name: &str,
    ) -> Result<Option<(u64, Metadata)>, CacheError> {
        let found = match keys::seq_of_name(name) {
            Some(seq) => plan.get(area, seq)?.map(|meta| (seq, meta)),
            None => None,
        };
        if found.is_none() {
            tracing::warn!(owner = %self.inner.owner, %area, name, "cache update: no such entry, skipped");
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::content_type_of;

    #[test]
    fn content_type_follows_the_extension_as_oibus_reads_it() {
        assert_eq!(content_type_of("a.csv"), "csv");
        assert_eq!(content_type_of("dir/a.b.json"), "json");
        assert_eq!(content_type_of("x.xml"), "xml");
        assert_eq!(content_type_of(".csv"), "raw");
        assert_eq!(content_type_of("data.tar.gz"), "raw");
        assert_eq!(content_type_of("noext"), "raw");
    }
}
