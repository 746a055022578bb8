//! `[media]`: where uploaded files live, what may be uploaded, thumbnails and deletion.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaBackend {
    /// Files under `media.path` (default `<data_dir>/media`).
    Local,
    /// An S3 bucket (`[media.s3]`).
    S3,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub backend: MediaBackend,
    /// Local backend: the directory; empty means `<data_dir>/media`.
    pub path: Option<PathBuf>,
    pub s3: S3Config,
    /// Largest upload per kind of content, in bytes (413 M_TOO_LARGE beyond).
    pub max_image_bytes: u64,
    pub max_video_bytes: u64,
    pub max_audio_bytes: u64,
    pub max_file_bytes: u64,
    /// Content types that may be uploaded; `*` matches any run of characters (`video/*`).
    pub allowed_types: Vec<String>,
    /// Thumbnails generated ahead of time and offered (spec: Synapse's sizes).
    pub thumbnail_sizes: Vec<ThumbnailSize>,
    /// Images with more pixels than this are stored but not thumbnailed.
    pub max_thumbnail_source_pixels: u64,
    /// The `ffmpeg` program that takes the first frame of videos for their thumbnails; videos
    /// get no thumbnail when it cannot be run.
    pub ffmpeg_path: String,
    /// Serve media through the deprecated unauthenticated `/_matrix/media/v3/download` and
    /// `/thumbnail` endpoints (spec v1.11 asks servers to "freeze" them; Synapse does).
    pub legacy_unauthenticated_downloads: bool,
    /// How long the bytes of media whose every message was deleted are kept before removal.
    pub redacted_grace_period_ms: u64,
    /// Delete local media unused (not downloaded) for this long; 0 keeps it forever.
    pub local_retention_ms: u64,
    /// Delete cached remote media unused for this long; 0 keeps it forever.
    pub remote_retention_ms: u64,
    /// How often the bytes of deleted, expired and unused media are looked for and removed.
    pub cleanup_interval_ms: u64,
    /// Async uploads (`POST /create`): how many may be pending per user, and for how long.
    pub max_pending_uploads: u32,
    pub pending_upload_lifetime_ms: u64,
    pub url_preview: UrlPreviewConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailSize {
    pub width: u32,
    pub height: u32,
    /// `crop` or `scale`.
    pub method: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended to every object key (e.g. `hearth/`).
    pub prefix: String,
    /// A custom endpoint (MinIO, Garage, moto…); empty means AWS.
    pub endpoint: String,
    pub region: String,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Credentials; when empty, the standard AWS environment (AWS_ACCESS_KEY_ID…, profiles).
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlPreviewConfig {
    /// Off by default: previews make the server fetch URLs that users post.
    pub enabled: bool,
    /// Ranges a preview may reach even though they are private, loopback or link-local
    /// (e.g. `["127.0.0.1/32"]` for a test server). Empty: none.
    pub allowed_ip_ranges: Vec<String>,
    /// The largest page or image fetched for a preview.
    pub max_bytes: u64,
}

impl Default for UrlPreviewConfig {
    fn default() -> Self {
        Self { enabled: false, allowed_ip_ranges: Vec::new(), max_bytes: 10 * 1024 * 1024 }
    }
}

const MIB: u64 = 1024 * 1024;

impl Default for MediaConfig {
    fn default() -> Self {
        let size = |width, height, method: &str| ThumbnailSize { width, height, method: method.to_owned() };
        Self {
            backend: MediaBackend::Local,
            path: None,
            s3: S3Config { region: "us-east-1".into(), ..S3Config::default() },
            max_image_bytes: 25 * MIB,
            max_video_bytes: 200 * MIB,
            max_audio_bytes: 50 * MIB,
            max_file_bytes: 100 * MIB,
            allowed_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "image/avif",
                "image/heic",
                "image/heif",
                "image/bmp",
                "image/tiff",
                "video/*",
                "audio/*",
                "text/plain",
                "text/csv",
                "text/markdown",
                "text/calendar",
                "text/vcard",
                "application/pdf",
                "application/json",
                "application/zip",
                "application/gzip",
                "application/x-tar",
                "application/x-7z-compressed",
                "application/vnd.rar",
                "application/msword",
                "application/rtf",
                "application/vnd.ms-*",
                "application/vnd.openxmlformats-officedocument.*",
                "application/vnd.oasis.opendocument.*",
                "application/epub+zip",
                // Encrypted attachments are opaque bytes, and so is anything a client cannot name.
                "application/octet-stream",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            thumbnail_sizes: vec![
                size(32, 32, "crop"),
                size(96, 96, "crop"),
                size(320, 240, "scale"),
                size(640, 480, "scale"),
                size(800, 600, "scale"),
            ],
            max_thumbnail_source_pixels: 32_000_000,
            ffmpeg_path: "ffmpeg".into(),
            legacy_unauthenticated_downloads: false,
            redacted_grace_period_ms: 48 * 3600 * 1000,
            local_retention_ms: 0,
            remote_retention_ms: 90 * 24 * 3600 * 1000,
            cleanup_interval_ms: 60_000,
            max_pending_uploads: 5,
            pending_upload_lifetime_ms: 24 * 3600 * 1000,
            url_preview: UrlPreviewConfig::default(),
        }
    }
}

impl MediaConfig {
    /// The largest upload of any kind (what /media/config advertises).
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_image_bytes.max(self.max_video_bytes).max(self.max_audio_bytes).max(self.max_file_bytes)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.backend == MediaBackend::S3 && self.s3.bucket.is_empty() {
            return Err("media.s3.bucket: the s3 backend needs a bucket".into());
        }
        for size in &self.thumbnail_sizes {
            if size.width == 0 || size.height == 0 || !matches!(size.method.as_str(), "crop" | "scale") {
                return Err(
                    "media.thumbnail_sizes: each needs a positive width and height and method crop or scale".into()
                );
            }
        }
        if self.allowed_types.iter().any(|t| t.trim().is_empty() || t.starts_with("text/html")) {
            return Err("media.allowed_types: types may not be empty, and text/html is never allowed".into());
        }
        if self
            .url_preview
            .allowed_ip_ranges
            .iter()
            .any(|range| crate::services::media::IpRange::parse(range).is_none())
        {
            return Err("media.url_preview.allowed_ip_ranges: use CIDR ranges such as 127.0.0.1/32".into());
        }
        Ok(())
    }
}
