//! Where media bytes live, behind one interface: a directory on local disk (the default) or an
//! S3 bucket. Objects are named by key (`<origin>/<ab>/<cd>/<rest of id>`, sharded so no
//! directory grows huge); reads stream, so a large video is never held in memory whole.

use std::{
    io,
    path::{Path, PathBuf},
    pin::Pin,
};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::s3::S3Store;

/// A body being read from the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

pub enum MediaStore {
    Local(LocalStore),
    S3(S3Store),
}

/// The key of an original file.
pub fn original_key(origin: &str, media_id: &str) -> String {
    let (a, rest) = media_id.split_at(media_id.len().min(2));
    let (b, rest) = rest.split_at(rest.len().min(2));
    let shard = |s: &str| if s.is_empty() { "_".to_owned() } else { s.to_owned() };
    format!("{origin}/{}/{}/{}", shard(a), shard(b), shard(rest))
}

/// The key of one thumbnail of a file.
pub fn thumbnail_key(origin: &str, media_id: &str, width: u32, height: u32, method: &str, animated: bool) -> String {
    let suffix = if animated { "-animated" } else { "" };
    format!("thumbnails/{}/{width}x{height}-{method}{suffix}", original_key(origin, media_id))
}

impl MediaStore {
    /// Stores a finished file from the local temporary directory (which it may move away).
    pub async fn put_file(&self, key: &str, source: &Path) -> io::Result<()> {
        match self {
            MediaStore::Local(local) => local.put_file(key, source).await,
            MediaStore::S3(s3) => s3.put_file(key, source).await,
        }
    }

    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        match self {
            MediaStore::Local(local) => local.put_bytes(key, bytes).await,
            MediaStore::S3(s3) => s3.put_bytes(key, bytes).await,
        }
    }

    /// Reads `len` bytes from `start` (the whole object: 0 and its size).
    pub async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        match self {
            MediaStore::Local(local) => local.read(key, start, len).await,
            MediaStore::S3(s3) => s3.read(key, start, len).await,
        }
    }

    /// Reads a whole (small) object into memory: thumbnail sources up to the configured limit.
    pub async fn read_all(&self, key: &str, size: u64) -> io::Result<Vec<u8>> {
        use futures_util::StreamExt;
        let mut stream = self.read(key, 0, size).await?;
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> io::Result<()> {
        match self {
            MediaStore::Local(local) => local.delete(key).await,
            MediaStore::S3(s3) => s3.delete(key).await,
        }
    }
}

/// Files under a directory.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    async fn put_file(&self, key: &str, source: &Path) -> io::Result<()> {
        let target = self.path(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // The temporary directory is on the same disk as the store: a rename, not a copy.
        if tokio::fs::rename(source, &target).await.is_err() {
            let partial = target.with_extension("partial");
            tokio::fs::copy(source, &partial).await?;
            tokio::fs::rename(&partial, &target).await?;
            tokio::fs::remove_file(source).await?;
        }
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        let target = self.path(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Written aside and renamed: a reader never sees half a file.
        let partial = target.with_extension(format!("partial-{}", crate::services::tokens::generate_session_id()));
        tokio::fs::write(&partial, &bytes).await?;
        tokio::fs::rename(&partial, &target).await
    }

    async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.path(key)).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024)))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sharded_and_safe_for_short_ids() {
        assert_eq!(original_key("hs.org", "abcdefgh"), "hs.org/ab/cd/efgh");
        assert_eq!(original_key("hs.org", "ab"), "hs.org/ab/_/_");
        assert_eq!(
            thumbnail_key("hs.org", "abcdefgh", 32, 32, "crop", false),
            "thumbnails/hs.org/ab/cd/efgh/32x32-crop"
        );
    }
}
