//! The media repository (spec: Client-Server API § Content repository): uploads (direct and
//! asynchronous), downloads with ranges, thumbnails, and the rules on what may be stored and
//! how it is served. Bytes live in a `MediaStore` (local disk or S3); records in the database.

pub mod checks;
pub mod multipart;
mod net;
pub mod preview;
pub mod range;
pub mod refs;
mod s3;
mod spool;
pub mod store;
pub mod thumbnail;
mod video;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::Stream;
pub use net::{IpRange, is_internal};
pub use s3::S3Store;
use tokio::sync::Notify;

use self::{
    spool::Spool,
    store::{ByteStream, MediaStore, original_key},
};
use crate::{
    config::MediaConfig,
    error::{ApiError, ApiResult, ErrorKind},
    services::federation::FederationClient,
    storage::{
        Db,
        media::{MediaRecord, UploadedMedia},
        now_ms,
    },
};

pub struct Media {
    db: Db,
    store: MediaStore,
    config: MediaConfig,
    server_name: String,
    /// Uploads are received here before they are checked and stored.
    spool_dir: PathBuf,
    /// Woken whenever an async upload completes (downloads may wait for one).
    uploaded: Notify,
    /// Reserved ids whose bytes are arriving: a second upload to the same id is refused at
    /// once instead of overwriting the first one's bytes in the store.
    arriving: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Thumbnails made at once: decoding a 12-megapixel photo takes ~40 MB, so this bounds
    /// memory and leaves CPU for everything else.
    thumbnailing: tokio::sync::Semaphore,
    /// Whether `ffmpeg` is installed (video thumbnails need it).
    ffmpeg: bool,
    /// Other servers' media are fetched over federation on first use and kept.
    federation: Arc<FederationClient>,
    /// One fetch per remote file at a time.
    fetching: tokio::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a download sends.
pub struct Download {
    pub content_type: String,
    pub file_name: Option<String>,
    /// The file's full size.
    pub size: u64,
    /// The part sent, inclusive, when a range was asked for.
    pub range: Option<(u64, u64)>,
    pub body: ByteStream,
}

/// The file name of a Content-Disposition value (`filename="…"`), if it names one.
fn disposition_file_name(disposition: &str) -> Option<String> {
    disposition
        .split(';')
        .map(str::trim)
        .find_map(|param| param.strip_prefix("filename="))
        .map(|name| name.trim_matches('"').to_owned())
        .filter(|name| !name.is_empty() && name.len() <= 255 && !name.contains(['/', '\\', '\0']))
}

/// The longest a download waits for an async upload to arrive.
const MAX_UPLOAD_WAIT: Duration = Duration::from_secs(120);

impl Media {
    pub fn new(
        db: Db,
        store: MediaStore,
        config: MediaConfig,
        server_name: String,
        spool_dir: PathBuf,
        federation: Arc<FederationClient>,
    ) -> Self {
        let ffmpeg = video::ffmpeg_available(&config.ffmpeg_path);
        if !ffmpeg {
            tracing::info!("ffmpeg is not installed: videos get no thumbnails");
        }
        Self {
            db,
            store,
            config,
            server_name,
            spool_dir,
            uploaded: Notify::new(),
            arriving: Default::default(),
            thumbnailing: tokio::sync::Semaphore::new(2),
            ffmpeg,
            federation,
            fetching: Default::default(),
        }
    }

    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// POST /_matrix/media/v3/upload: stores the body and returns its `mxc://` URI.
    pub async fn upload<E: std::fmt::Display>(
        &self,
        uploader: &str,
        declared: Option<&str>,
        file_name: Option<&str>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<String> {
        let media_id = crate::services::tokens::generate_media_id();
        let (spool, content_type) = self.receive(declared, file_name, body).await?;
        let (size, sha256) = (spool.size, spool.sha256.clone());
        self.keep(spool, &media_id).await?;
        let record = UploadedMedia {
            origin: &self.server_name,
            media_id: &media_id,
            uploader,
            content_type: &content_type,
            file_name,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: &sha256,
        };
        if let Err(error) = self.db.insert_uploaded_media(&record).await {
            // Nothing refers to the stored bytes yet: remove them again.
            let _ = self.store.delete(&original_key(&self.server_name, &media_id)).await;
            return Err(error.into());
        }
        tracing::info!(%uploader, media_id, size = record.size_bytes, "media uploaded");
        Ok(format!("mxc://{}/{media_id}", self.server_name))
    }

    /// POST /_matrix/media/v1/create: reserves an id to upload to later.
    pub async fn create(&self, uploader: &str) -> ApiResult<(String, i64)> {
        let media_id = crate::services::tokens::generate_media_id();
        let expires = now_ms() + i64::try_from(self.config.pending_upload_lifetime_ms).unwrap_or(i64::MAX / 2);
        let max_pending = i64::from(self.config.max_pending_uploads);
        if !self.db.reserve_media(&self.server_name, &media_id, uploader, expires, max_pending).await? {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded { retry_after_ms: 30_000 },
                "Too many uploads are pending; finish or abandon one first",
            ));
        }
        Ok((format!("mxc://{}/{media_id}", self.server_name), expires))
    }

    /// PUT /_matrix/media/v3/upload/{serverName}/{mediaId}: the bytes of a reserved id, once,
    /// by the user who reserved it.
    pub async fn upload_reserved<E: std::fmt::Display>(
        &self,
        uploader: &str,
        server_name: &str,
        media_id: &str,
        declared: Option<&str>,
        file_name: Option<&str>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<()> {
        let record = self.local_record(server_name, media_id).await?;
        if record.uploader.as_deref() != Some(uploader) {
            return Err(ApiError::forbidden("This media id was reserved by someone else"));
        }
        if record.size_bytes.is_some() {
            return Err(ApiError::new(ErrorKind::CannotOverwriteMedia, "This media already has its content"));
        }
        if record.unused_expires_ts.is_some_and(|expires| expires < now_ms()) {
            return Err(ApiError::not_found("The reservation for this media id has expired"));
        }
        if !self.arriving.lock().expect("arriving lock").insert(media_id.to_owned()) {
            return Err(ApiError::new(ErrorKind::CannotOverwriteMedia, "This media is already being uploaded"));
        }
        let result = self.receive_reserved(uploader, media_id, declared, file_name, body).await;
        self.arriving.lock().expect("arriving lock").remove(media_id);
        result
    }

    async fn receive_reserved<E: std::fmt::Display>(
        &self,
        uploader: &str,
        media_id: &str,
        declared: Option<&str>,
        file_name: Option<&str>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<()> {
        let (spool, content_type) = self.receive(declared, file_name, body).await?;
        let (size, sha256) = (spool.size, spool.sha256.clone());
        self.keep(spool, media_id).await?;
        let completed = UploadedMedia {
            origin: &self.server_name,
            media_id,
            uploader,
            content_type: &content_type,
            file_name,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: &sha256,
        };
        if !self.db.complete_reserved_media(&completed).await? {
            // Another request completed it first; its bytes are the ones stored.
            return Err(ApiError::new(ErrorKind::CannotOverwriteMedia, "This media already has its content"));
        }
        self.uploaded.notify_waiters();
        Ok(())
    }

    /// Receives and checks an upload: the stored content type is the declared one (the bytes
    /// were checked to match it).
    async fn receive<E: std::fmt::Display>(
        &self,
        declared: Option<&str>,
        file_name: Option<&str>,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> ApiResult<(Spool, String)> {
        if file_name.is_some_and(|name| name.len() > 255 || name.contains(['/', '\\', '\0'])) {
            return Err(ApiError::invalid_param("filename may not contain slashes and is at most 255 bytes"));
        }
        let declared = declared.filter(|t| !t.trim().is_empty()).unwrap_or("application/octet-stream").to_owned();
        if !checks::allowed(&self.config, &declared) {
            return Err(ApiError::new(
                ErrorKind::Unknown,
                format!("Files of type {} may not be uploaded", checks::essence(&declared)),
            ));
        }
        let spool = Spool::receive(&self.spool_dir, body, self.config.max_upload_bytes()).await?;
        let sniffed = spool.sniffed_type();
        checks::check_upload(&self.config, &declared, file_name, sniffed)
            .map_err(|reason| ApiError::new(ErrorKind::Unknown, reason))?;
        let kind = checks::Kind::of(checks::effective_type(&declared, sniffed));
        if spool.size > kind.limit(&self.config) {
            return Err(ApiError::new(
                ErrorKind::TooLarge,
                format!("{kind:?} uploads may not exceed {} bytes", kind.limit(&self.config)),
            ));
        }
        Ok((spool, declared))
    }

    /// Moves a checked upload into the store.
    async fn keep(&self, spool: Spool, media_id: &str) -> ApiResult<()> {
        self.store
            .put_file(&original_key(&self.server_name, media_id), spool.path())
            .await
            .map_err(ApiError::internal)?;
        spool.handed_on();
        Ok(())
    }

    /// A local media record, or 404.
    async fn local_record(&self, server_name: &str, media_id: &str) -> ApiResult<MediaRecord> {
        if ruma::ServerName::parse(server_name).is_err() || !checks::valid_media_id(media_id) {
            return Err(ApiError::not_found("Unknown media"));
        }
        if server_name != self.server_name {
            return self.remote_record(server_name, media_id).await;
        }
        self.db.media(server_name, media_id).await?.ok_or_else(|| ApiError::not_found("Unknown media"))
    }

    /// Another server's file: from the store when fetched before, otherwise fetched now
    /// (GET /_matrix/federation/v1/media/download), checked like an upload and kept.
    async fn remote_record(&self, origin: &str, media_id: &str) -> ApiResult<MediaRecord> {
        if let Some(record) = self.db.media(origin, media_id).await? {
            return Ok(record);
        }
        let lock = self.fetching.lock().await.entry(format!("{origin}/{media_id}")).or_default().clone();
        let _one_fetch = lock.lock().await;
        if let Some(record) = self.db.media(origin, media_id).await? {
            return Ok(record);
        }
        let server = ruma::ServerName::parse(origin).map_err(|_| ApiError::not_found("Unknown media"))?;
        let limit = usize::try_from(self.config.max_upload_bytes()).unwrap_or(usize::MAX);
        let path =
            format!("/_matrix/federation/v1/media/download/{}", crate::services::federation::query_value(media_id));
        let (content_type, body) =
            self.federation.get_bytes(&server, &path, limit.saturating_add(64 * 1024)).await.map_err(|error| {
                match error {
                    crate::services::federation::FederationError::Remote { status: 404, .. } => {
                        ApiError::not_found("Unknown media")
                    }
                    other => other.into_api_error(),
                }
            })?;
        let (declared, disposition, bytes) = multipart::file_part(&content_type, &body)
            .map_err(|reason| ApiError::new(ErrorKind::BadGateway, format!("{origin} sent bad media: {reason}")))?;
        let file_name = disposition.as_deref().and_then(disposition_file_name);
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(bytes)) });
        let (spool, content_type) = self.receive(Some(&declared), file_name.as_deref(), Box::pin(stream)).await?;
        let (size, sha256) = (spool.size, spool.sha256.clone());
        self.store.put_file(&original_key(origin, media_id), spool.path()).await.map_err(ApiError::internal)?;
        spool.handed_on();
        let record = UploadedMedia {
            origin,
            media_id,
            uploader: "",
            content_type: &content_type,
            file_name: file_name.as_deref(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: &sha256,
        };
        self.db.insert_uploaded_media(&record).await?;
        tracing::info!(origin, media_id, size = record.size_bytes, "remote media fetched");
        self.db.media(origin, media_id).await?.ok_or_else(|| ApiError::internal("remote media not stored"))
    }

    /// A servable record, waiting up to `timeout` for an async upload still on its way.
    async fn servable(
        &self,
        server_name: &str,
        media_id: &str,
        timeout: Duration,
        legacy: bool,
    ) -> ApiResult<MediaRecord> {
        if legacy && !self.config.legacy_unauthenticated_downloads {
            // Spec v1.11: the unauthenticated endpoints are frozen.
            return Err(ApiError::not_found(
                "Unknown media (use the authenticated /_matrix/client/v1/media endpoints)",
            ));
        }
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_UPLOAD_WAIT);
        loop {
            let waiting = self.uploaded.notified();
            let record = self.local_record(server_name, media_id).await?;
            if record.quarantined || record.deleted_ts.is_some() {
                return Err(ApiError::not_found("This media is no longer available"));
            }
            if record.size_bytes.is_some() {
                return Ok(record);
            }
            if tokio::time::timeout_at(deadline, waiting).await.is_err() {
                return Err(ApiError::new(ErrorKind::NotYetUploaded, "The content has not been uploaded yet"));
            }
        }
    }

    /// GET …/download/{serverName}/{mediaId}: the file, or the asked-for range of it.
    pub async fn download(
        &self,
        server_name: &str,
        media_id: &str,
        range: Option<&str>,
        timeout: Duration,
        legacy: bool,
    ) -> ApiResult<Download> {
        let record = self.servable(server_name, media_id, timeout, legacy).await?;
        let size = u64::try_from(record.size_bytes.unwrap_or(0)).unwrap_or(0);
        let range = range::parse(range, size)
            .map_err(|_| ApiError::new(ErrorKind::RangeNotSatisfiable, format!("The file has {size} bytes")))?;
        let (start, len) = match range {
            Some((first, last)) => (first, last - first + 1),
            None => (0, size),
        };
        let body = self
            .store
            .read(&original_key(&record.origin, &record.media_id), start, len)
            .await
            .map_err(ApiError::internal)?;
        let db = self.db.clone();
        let (origin, id) = (record.origin.clone(), record.media_id.clone());
        tokio::spawn(async move {
            let _ = db.touch_media(&origin, &id).await;
        });
        Ok(Download { content_type: record.content_type, file_name: record.file_name, size, range, body })
    }
}

impl Media {
    /// GET …/thumbnail/{serverName}/{mediaId}: a stored thumbnail of the size asked for (or
    /// the next configured size up), made on first request; the original when it is no larger
    /// than asked.
    #[allow(clippy::too_many_arguments)]
    pub async fn thumbnail(
        &self,
        server_name: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: thumbnail::Method,
        animated: bool,
        timeout: Duration,
        legacy: bool,
    ) -> ApiResult<Download> {
        let record = self.servable(server_name, media_id, timeout, legacy).await?;
        let kind = checks::Kind::of(&record.content_type);
        let video = kind == checks::Kind::Video;
        if kind != checks::Kind::Image && !video {
            return Err(ApiError::not_found("Only images and videos have thumbnails"));
        }
        if video && !self.ffmpeg {
            return Err(ApiError::not_found("No thumbnail: video thumbnails need ffmpeg on the server"));
        }
        let (width, height) = thumbnail::choose_size(&self.config.thumbnail_sizes, width, height, method);
        // Only GIFs are thumbnailed into animations; everything else gives a still.
        let animated = animated && checks::essence(&record.content_type) == "image/gif";
        let key = store::thumbnail_key(&record.origin, &record.media_id, width, height, method.as_str(), animated);
        if let Some(stored) = self.stored_thumbnail(&record, &key, (width, height), method, animated).await? {
            return Ok(stored);
        }
        let _permit = self.thumbnailing.acquire().await.map_err(ApiError::internal)?;
        // Made by another request while this one waited for its turn?
        if let Some(stored) = self.stored_thumbnail(&record, &key, (width, height), method, animated).await? {
            return Ok(stored);
        }
        let size = u64::try_from(record.size_bytes.unwrap_or(0)).unwrap_or(0);
        let original_key = original_key(&record.origin, &record.media_id);
        let source = if video {
            let frame =
                video::first_frame(&self.config.ffmpeg_path, &self.store, &original_key, size, &self.spool_dir).await;
            frame.ok_or_else(|| ApiError::not_found("No thumbnail: the video's first frame could not be read"))?
        } else {
            self.store.read_all(&original_key, size).await.map_err(ApiError::internal)?
        };
        let max_pixels = self.config.max_thumbnail_source_pixels;
        let made =
            tokio::task::spawn_blocking(move || thumbnail::make(&source, width, height, method, animated, max_pixels))
                .await
                .map_err(ApiError::internal)?;
        let made = match made {
            Ok(made) => made,
            Err(thumbnail::ThumbnailError::UseOriginal) if !video => {
                let body = self.store.read(&original_key, 0, size).await.map_err(ApiError::internal)?;
                return Ok(Download { content_type: record.content_type, file_name: None, size, range: None, body });
            }
            Err(thumbnail::ThumbnailError::TooManyPixels(pixels)) => {
                return Err(ApiError::new(
                    ErrorKind::TooLarge,
                    format!("The image has too many pixels ({pixels}) to thumbnail"),
                ));
            }
            Err(error) => {
                tracing::debug!(%error, media_id, "no thumbnail");
                return Err(ApiError::not_found("No thumbnail is available for this media"));
            }
        };
        let bytes = Bytes::from(made.bytes);
        self.store.put_bytes(&key, bytes.clone()).await.map_err(ApiError::internal)?;
        let record_row = crate::storage::media::ThumbnailRecord {
            width: i64::from(width),
            height: i64::from(height),
            method: method.as_str().to_owned(),
            animated,
            content_type: made.content_type.to_owned(),
            size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        };
        self.db.insert_thumbnail(&record.origin, &record.media_id, &record_row).await?;
        let size = bytes.len() as u64;
        let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
        Ok(Download { content_type: made.content_type.to_owned(), file_name: None, size, range: None, body })
    }
}

impl Media {
    async fn stored_thumbnail(
        &self,
        record: &MediaRecord,
        key: &str,
        (width, height): (u32, u32),
        method: thumbnail::Method,
        animated: bool,
    ) -> ApiResult<Option<Download>> {
        let stored = self.db.thumbnails(&record.origin, &record.media_id).await?;
        let Some(existing) = stored.into_iter().find(|t| {
            t.width == i64::from(width)
                && t.height == i64::from(height)
                && t.method == method.as_str()
                && t.animated == animated
        }) else {
            return Ok(None);
        };
        let size = u64::try_from(existing.size_bytes).unwrap_or(0);
        let body = self.store.read(key, 0, size).await.map_err(ApiError::internal)?;
        Ok(Some(Download { content_type: existing.content_type, file_name: None, size, range: None, body }))
    }

    /// Removes the bytes of media that may go (deleted and past the grace period, expired
    /// reservations, unused media past the retention period); returns how many. Runs from the
    /// background task; a batch at a time.
    pub async fn cleanup(&self) -> ApiResult<usize> {
        let now = now_ms();
        let grace = i64::try_from(self.config.redacted_grace_period_ms).unwrap_or(i64::MAX);
        let retention = i64::try_from(self.config.local_retention_ms).unwrap_or(i64::MAX);
        let unused_before = (retention > 0).then(|| now.saturating_sub(retention));
        let batch = self.db.media_to_purge(now.saturating_sub(grace), unused_before, &self.server_name, 100).await?;
        for (origin, media_id) in &batch {
            for thumbnail in self.db.thumbnails(origin, media_id).await? {
                let key = store::thumbnail_key(
                    origin,
                    media_id,
                    u32::try_from(thumbnail.width).unwrap_or(0),
                    u32::try_from(thumbnail.height).unwrap_or(0),
                    &thumbnail.method,
                    thumbnail.animated,
                );
                self.store.delete(&key).await.map_err(ApiError::internal)?;
            }
            self.store.delete(&original_key(origin, media_id)).await.map_err(ApiError::internal)?;
            self.db.mark_media_purged(origin, media_id).await?;
            tracing::info!(%origin, %media_id, "media bytes removed");
        }
        Ok(batch.len())
    }

    /// Admin: quarantine (unreachable; bytes kept) or delete (unreachable; bytes go after the
    /// grace period) a file. M_NOT_FOUND for media this server does not have.
    pub async fn moderate(&self, server_name: &str, media_id: &str, quarantine: bool, delete: bool) -> ApiResult<()> {
        if ruma::ServerName::parse(server_name).is_err() || !checks::valid_media_id(media_id) {
            return Err(ApiError::not_found("Unknown media"));
        }
        if !self.db.set_media_state(server_name, media_id, quarantine, delete).await? {
            return Err(ApiError::not_found("Unknown media"));
        }
        tracing::info!(%server_name, %media_id, quarantine, delete, "media moderated");
        Ok(())
    }

    /// Admin: what is known about a file.
    pub async fn info(&self, server_name: &str, media_id: &str) -> ApiResult<MediaRecord> {
        self.db.media(server_name, media_id).await?.ok_or_else(|| ApiError::not_found("Unknown media"))
    }
}
