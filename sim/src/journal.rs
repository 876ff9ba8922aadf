//! The `--data` journal: one JSON event per line, append-only, replayed at start. It knows
//! nothing of the events (the store's `state::Event`), only how to keep them.
//!
//! Lines are written with a single `write` each batch and never rewritten. A line that does not
//! parse (a write cut by a crash, a hand edit) is skipped with a warning instead of refusing to
//! start, and a missing final newline is repaired first so the next line is not glued to it.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct Journal<E> {
    file: File,
    path: PathBuf,
    buffer: Vec<u8>,
    events: PhantomData<fn(E)>,
}

impl<E: Serialize + DeserializeOwned> Journal<E> {
    /// Opens (creating) the journal and returns the events it holds, in order.
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<E>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|err| with_path(err, "open", path))?;
        let events = read_events(&mut file, path)?;
        repair_last_line(&mut file).map_err(|err| with_path(err, "repair", path))?;
        let journal = Journal {
            file,
            path: path.to_owned(),
            buffer: Vec::new(),
            events: PhantomData,
        };
        Ok((journal, events))
    }

    pub fn append(&mut self, events: &[E]) -> std::io::Result<()> {
        self.buffer.clear();
        for event in events {
            serde_json::to_writer(&mut self.buffer, event)?;
            self.buffer.push(b'\n');
        }
        self.file
            .write_all(&self.buffer)
            .map_err(|err| with_path(err, "append to", &self.path))
    }
}

fn read_events<E: DeserializeOwned>(file: &mut File, path: &Path) -> std::io::Result<Vec<E>> {
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    let mut skipped = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<E>(&line) {
            Ok(event) => events.push(event),
            Err(err) => {
                skipped += 1;
                tracing::warn!(path = %path.display(), line = number, %err, "skipping unreadable journal line");
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "journal replayed with unreadable lines skipped");
    }
    Ok(events)
}

fn repair_last_line(file: &mut File) -> std::io::Result<()> {
    let length = file.seek(SeekFrom::End(0))?;
    if length == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(length - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

fn with_path(err: std::io::Error, action: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(
        err.kind(),
        format!("cannot {action} {}: {err}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn truncated_last_line_is_skipped_and_the_next_append_survives() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.jsonl");
        std::fs::write(
            &path,
            "{\"event\":\"violations-cleared\"}\n{\"event\":\"command-dro",
        )
        .expect("write");
        let (mut journal, events) =
            Journal::<Value>::open(&path).expect("opens despite the cut line");
        assert_eq!(events.len(), 1);
        journal
            .append(&[json!({"event": "violations-cleared"})])
            .expect("append");
        drop(journal);
        let (_, events) = Journal::<Value>::open(&path).expect("reopens");
        assert_eq!(events.len(), 2);
    }
}
