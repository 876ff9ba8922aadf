//! Upgrade assets served on E9: files under `<data>/assets/` with `--data`, else in memory.
//!
//! Uploads are streamed: to a temporary file renamed into place (a download in progress keeps
//! reading the file it opened), or into one buffer in memory. Downloads read 64 KiB at a time.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, LocalBoxStream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::lock;

const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error(
        "asset id {0:?} must be 1 to 128 characters from [A-Za-z0-9._-], not starting with '.'"
    )]
    BadId(String),
    #[error("cannot store asset {id:?} in {path}: {source}")]
    Write {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the upload of asset {id:?} was interrupted: {reason}")]
    Upload { id: String, reason: String },
}

/// An asset ready to be streamed.
pub struct Download {
    pub len: u64,
    pub stream: LocalBoxStream<'static, std::io::Result<Bytes>>,
}

pub struct Assets {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Bytes>>,
}

impl Assets {
    pub fn open(data: Option<&Path>) -> std::io::Result<Assets> {
        let dir = match data {
            None => None,
            Some(data) => {
                let dir = data.join("assets");
                std::fs::create_dir_all(&dir).map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("cannot create {}: {err}", dir.display()),
                    )
                })?;
                Some(dir)
            }
        };
        Ok(Assets {
            dir,
            memory: Mutex::new(HashMap::new()),
        })
    }

    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 128
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// Stores the whole `body` stream as asset `id`, replacing any previous one; returns its size.
    pub async fn put<S, E>(&self, id: &str, mut body: S) -> Result<u64, AssetError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if !Assets::valid_id(id) {
            return Err(AssetError::BadId(id.to_owned()));
        }
        let interrupted = |err: E| AssetError::Upload {
            id: id.to_owned(),
            reason: err.to_string(),
        };
        let Some(dir) = &self.dir else {
            let mut buffer = BytesMut::new();
            while let Some(chunk) = body.next().await {
                buffer.extend_from_slice(&chunk.map_err(interrupted)?);
            }
            let len = buffer.len() as u64;
            lock(&self.memory).insert(id.to_owned(), buffer.freeze());
            return Ok(len);
        };
        let temporary = dir.join(format!(".upload-{}", super::state::new_secret(12)));
        let write_error = |source: std::io::Error| AssetError::Write {
            id: id.to_owned(),
            path: temporary.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(&temporary)
            .await
            .map_err(write_error)?;
        let mut len = 0u64;
        let copied: Result<(), AssetError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(interrupted)?;
                file.write_all(&chunk).await.map_err(write_error)?;
                len += chunk.len() as u64;
            }
            file.flush().await.map_err(write_error)?;
            tokio::fs::rename(&temporary, dir.join(id))
                .await
                .map_err(write_error)
        }
        .await;
        if copied.is_err() {
            // Best effort: a leftover `.upload-*` file is harmless and never served.
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        copied.map(|()| len)
    }

    /// The asset `id` as a stream, `None` if there is no such asset.
    pub async fn get(&self, id: &str) -> std::io::Result<Option<Download>> {
        if !Assets::valid_id(id) {
            return Ok(None);
        }
        let Some(dir) = &self.dir else {
            let Some(bytes) = lock(&self.memory).get(id).cloned() else {
                return Ok(None);
            };
            let len = bytes.len() as u64;
            let pieces: Vec<std::io::Result<Bytes>> = (0..bytes.len())
                .step_by(READ_CHUNK)
                .map(|start| Ok(bytes.slice(start..bytes.len().min(start + READ_CHUNK))))
                .collect();
            return Ok(Some(Download {
                len,
                stream: stream::iter(pieces).boxed_local(),
            }));
        };
        let file = match tokio::fs::File::open(dir.join(id)).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let len = file.metadata().await?.len();
        let stream = stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; READ_CHUNK];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok(None);
            }
            buffer.truncate(read);
            Ok(Some((Bytes::from(buffer), file)))
        });
        Ok(Some(Download {
            len,
            stream: stream.into_stream().boxed_local(),
        }))
    }

    /// `(id, size)` of every asset, sorted by id.
    pub fn list(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut assets: Vec<(String, u64)> = match &self.dir {
            None => lock(&self.memory)
                .iter()
                .map(|(id, bytes)| (id.clone(), bytes.len() as u64))
                .collect(),
            Some(dir) => {
                let mut assets = Vec::new();
                for entry in std::fs::read_dir(dir)? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if Assets::valid_id(&name) && entry.file_type()?.is_file() {
                        assets.push((name, entry.metadata()?.len()));
                    }
                }
                assets
            }
        };
        assets.sort();
        Ok(assets)
    }
}
