//! North file-writer (OIBus `north-file-writer.ts`): each cache entry (a file, or the JSON array
//! of time-values or setpoints, as cached) becomes `<prefix><name><suffix><ext>` in
//! `outputFolder`, written atomically so a reader of the folder never sees a partial file.
//! `@ConnectorName` and `@CurrentDate` (UTC `yyyy_MM_dd_HH_mm_ss_SSS`) are replaced in the prefix
//! and suffix.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{json, Value};

use super::{ConnectorError, Delivery, SettingsReader};
use crate::atomic_file;
use crate::content::ContentType;

pub struct FileWriterNorth {
    name: String,
    output_folder: PathBuf,
    prefix: String,
    suffix: String,
}

impl FileWriterNorth {
    /// `settings`: `{outputFolder, prefix, suffix}` (the SMB `username`/`password`/`domain` are
    /// Windows-only in OIBus and ignored here).
    pub fn new(name: &str, settings: &Value) -> Result<FileWriterNorth, ConnectorError> {
        let label = format!("north '{name}'");
        let reader = SettingsReader::new(&label, settings);
        Ok(FileWriterNorth {
            name: name.to_owned(),
            output_folder: PathBuf::from(reader.required_string("outputFolder")?),
            prefix: reader.string_or("prefix", "")?,
            suffix: reader.string_or("suffix", "")?,
        })
    }

    /// Writes the entry into the output folder (on a blocking thread). A missing or
    /// unwritable folder, or a full disk, is retried: the entry waits until it is fixed.
    pub async fn send(&self, content_type: ContentType, filename: &str, body: Bytes) -> Delivery {
        if !matches!(
            content_type,
            ContentType::Any | ContentType::TimeValues | ContentType::Setpoint
        ) {
            return Delivery::Failed(format!(
                "Content type {content_type} is not supported by north file-writer"
            ));
        }
        let destination = self.output_folder.join(self.target_name(filename, &now()));
        let folder = self.output_folder.clone();
        let written = actix_rt::task::spawn_blocking(move || write(&folder, &destination, &body))
            .await
            .unwrap_or_else(|e| Err(format!("the write was interrupted: {e}")));
        match written {
            Ok(()) => Delivery::Sent,
            Err(reason) => Delivery::Retry(reason),
        }
    }

    /// Creates and removes `.oibus-write-test` in the folder, as OIBus; `{items: [Output Folder,
    /// Files]}`.
    pub async fn test_connection(&self) -> Result<Value, String> {
        let folder = self.output_folder.clone();
        actix_rt::task::spawn_blocking(move || {
            let probe = folder.join(".oibus-write-test");
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| format!("Write access error on \"{}\": {e}", folder.display()))?;
            let mut items =
                vec![json!({"key": "Output Folder", "value": folder.display().to_string()})];
            if let Ok(entries) = std::fs::read_dir(&folder) {
                items.push(json!({"key": "Files", "value": entries.count().to_string()}));
            }
            Ok(json!({ "items": items }))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the test was interrupted: {e}")))
    }

    /// `<prefix><name><suffix><ext>`, `ext` being the last extension of `filename` (as Node's
    /// `path.parse`). Path separators become `_` so that nothing lands outside the folder.
    fn target_name(&self, filename: &str, date: &str) -> String {
        let expand = |pattern: &str| {
            // Only the first occurrence, as JavaScript's String.replace with a string.
            pattern
                .replacen("@CurrentDate", date, 1)
                .replacen("@ConnectorName", &self.name, 1)
        };
        let base = filename.rsplit('/').next().unwrap_or(filename);
        let (stem, ext) = match base.rfind('.') {
            Some(dot) if dot > 0 => base.split_at(dot),
            _ => (base, ""),
        };
        let name = format!(
            "{}{stem}{}{ext}",
            expand(&self.prefix),
            expand(&self.suffix)
        );
        name.replace(['/', '\\'], "_")
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y_%m_%d_%H_%M_%S_%3f")
        .to_string()
}

/// The atomic write, its failure said with the folder's state.
fn write(folder: &Path, destination: &Path, body: &[u8]) -> Result<(), String> {
    match std::fs::metadata(folder) {
        Err(e) => {
            return Err(format!(
                "Output folder \"{}\" is not reachable ({e}); create it or correct outputFolder",
                folder.display()
            ))
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(format!(
                "Output folder \"{}\" is not a folder; correct outputFolder",
                folder.display()
            ))
        }
        Ok(_) => {}
    }
    atomic_file::write(destination, body).map_err(|e| {
        format!("{e}; check that the agent's user may write in the output folder and that the disk is not full")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(folder: &Path, prefix: &str, suffix: &str) -> FileWriterNorth {
        FileWriterNorth::new(
            "fw",
            &json!({"outputFolder": folder, "prefix": prefix, "suffix": suffix}),
        )
        .unwrap()
    }

    #[test]
    fn names_take_prefix_and_suffix_around_the_stem() {
        let north = writer(Path::new("/out"), "@ConnectorName-", "-@CurrentDate");
        assert_eq!(
            north.target_name("data.csv", "2026_01_02_03_04_05_006"),
            "fw-data-2026_01_02_03_04_05_006.csv"
        );
        assert_eq!(north.target_name("a.tar.gz", "D"), "fw-a.tar-D.gz");
        assert_eq!(north.target_name(".hidden", "D"), "fw-.hidden-D");
        assert_eq!(north.target_name("sub/x.txt", "D"), "fw-x-D.txt");
        let plain = writer(Path::new("/out"), "", "");
        assert_eq!(plain.target_name("v.json", "D"), "v.json");
    }

    #[test]
    fn current_date_is_utc_with_milliseconds() {
        let date = now();
        assert_eq!(date.len(), "2026_01_02_03_04_05_006".len(), "{date}");
        assert_eq!(date.matches('_').count(), 6, "{date}");
    }

    #[actix_rt::test]
    async fn an_entry_is_written_whole_under_its_target_name() {
        let dir = tempfile::tempdir().unwrap();
        let north = writer(dir.path(), "p-", "-s");
        let delivery = north
            .send(
                ContentType::TimeValues,
                "v.json",
                Bytes::from_static(b"[1]"),
            )
            .await;
        assert_eq!(delivery, Delivery::Sent);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // No temporary sibling is left behind.
        assert_eq!(names, vec!["p-v-s.json".to_owned()]);
        assert_eq!(
            std::fs::read(dir.path().join("p-v-s.json")).unwrap(),
            b"[1]"
        );
    }

    #[actix_rt::test]
    async fn a_missing_folder_is_retried_with_a_clear_text() {
        let dir = tempfile::tempdir().unwrap();
        let north = writer(&dir.path().join("absent"), "", "");
        match north.send(ContentType::Any, "f.txt", Bytes::new()).await {
            Delivery::Retry(text) => {
                assert!(text.contains("is not reachable"), "{text}");
                assert!(text.contains("correct outputFolder"), "{text}");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        assert!(north
            .test_connection()
            .await
            .unwrap_err()
            .starts_with("Write access error on"));
    }

    #[actix_rt::test]
    async fn test_connection_lists_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        let result = writer(dir.path(), "", "").test_connection().await.unwrap();
        assert_eq!(result["items"][1], json!({"key": "Files", "value": "1"}));
        assert!(!dir.path().join(".oibus-write-test").exists());
    }

    #[actix_rt::test]
    async fn other_content_types_are_not_supported() {
        let dir = tempfile::tempdir().unwrap();
        let delivery = writer(dir.path(), "", "")
            .send(ContentType::Mqtt, "m.json", Bytes::new())
            .await;
        assert!(
            matches!(delivery, Delivery::Failed(t) if t.ends_with("not supported by north file-writer"))
        );
    }
}
