//! An upload on its way in: the request body is written chunk by chunk to a temporary file
//! (never held in memory whole), counted against the size limit as it arrives, hashed, and its
//! first bytes kept for sniffing. The file is removed when the spool is dropped unless it was
//! handed on, so a refused or interrupted upload leaves nothing behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult, ErrorKind};

/// How many leading bytes type sniffing looks at.
const HEAD_BYTES: usize = 8192;

pub struct Spool {
    path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The first bytes, for sniffing the real type.
    pub head: Vec<u8>,
    keep: bool,
}

impl Spool {
    /// Writes `body` into a new file in `dir`, refusing (413 M_TOO_LARGE) past `limit` bytes.
    pub async fn receive<E: std::fmt::Display>(
        dir: &Path,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
        limit: u64,
    ) -> ApiResult<Self> {
        tokio::fs::create_dir_all(dir).await.map_err(ApiError::internal)?;
        let path = dir.join(format!("upload-{}", crate::services::tokens::generate_session_id()));
        let mut spool = Spool { path, size: 0, sha256: String::new(), head: Vec::new(), keep: false };
        let mut file = tokio::fs::File::create(&spool.path).await.map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| ApiError::new(ErrorKind::Unknown, format!("Upload interrupted: {error}")))?;
            spool.size += chunk.len() as u64;
            if spool.size > limit {
                return Err(ApiError::new(ErrorKind::TooLarge, format!("Uploads may not exceed {limit} bytes")));
            }
            if spool.head.len() < HEAD_BYTES {
                let wanted = (HEAD_BYTES - spool.head.len()).min(chunk.len());
                spool.head.extend_from_slice(&chunk[..wanted]);
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.flush().await.map_err(ApiError::internal)?;
        file.sync_all().await.map_err(ApiError::internal)?;
        spool.sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The real type of the content, from its first bytes; None when unrecognised (text, or
    /// opaque bytes such as an encrypted attachment).
    pub fn sniffed_type(&self) -> Option<&'static str> {
        infer::get(&self.head).map(|kind| kind.mime_type())
    }

    /// The store took the file (moved it away): nothing to remove.
    pub fn handed_on(mut self) {
        self.keep = true;
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort and synchronous: the file is in our own temporary directory.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
