//! Media records, thumbnails and references (the bytes themselves live in the media store).

use super::{Backend, Db, now_ms};

/// One file of the media repository.
#[derive(Debug, Clone)]
pub struct MediaRecord {
    pub origin: String,
    pub media_id: String,
    pub uploader: Option<String>,
    pub content_type: String,
    pub file_name: Option<String>,
    /// None until uploaded.
    pub size_bytes: Option<i64>,
    pub created_ts: i64,
    pub unused_expires_ts: Option<i64>,
    pub quarantined: bool,
    pub deleted_ts: Option<i64>,
}

impl MediaRecord {
    /// Whether the bytes may be served: uploaded, neither quarantined nor deleted.
    pub fn servable(&self) -> bool {
        self.size_bytes.is_some() && !self.quarantined && self.deleted_ts.is_none()
    }
}

/// A stored thumbnail.
#[derive(Debug, Clone)]
pub struct ThumbnailRecord {
    pub width: i64,
    pub height: i64,
    pub method: String,
    pub animated: bool,
    pub content_type: String,
    pub size_bytes: i64,
}

type MediaRow =
    (String, String, Option<String>, String, Option<String>, Option<i64>, i64, Option<i64>, i64, Option<i64>);

const MEDIA_COLUMNS: &str = "origin, media_id, uploader, content_type, file_name, size_bytes, created_ts, unused_expires_ts, quarantined, deleted_ts";

fn to_record(row: MediaRow) -> MediaRecord {
    let (
        origin,
        media_id,
        uploader,
        content_type,
        file_name,
        size_bytes,
        created_ts,
        unused_expires_ts,
        quarantined,
        deleted_ts,
    ) = row;
    MediaRecord {
        origin,
        media_id,
        uploader,
        content_type,
        file_name,
        size_bytes,
        created_ts,
        unused_expires_ts,
        quarantined: quarantined != 0,
        deleted_ts,
    }
}

/// A finished upload to record.
pub struct UploadedMedia<'a> {
    pub origin: &'a str,
    pub media_id: &'a str,
    pub uploader: &'a str,
    pub content_type: &'a str,
    pub file_name: Option<&'a str>,
    pub size_bytes: i64,
    pub sha256: &'a str,
}

impl Db {
    pub async fn media(&self, origin: &str, media_id: &str) -> sqlx::Result<Option<MediaRecord>> {
        let sql = format!("SELECT {MEDIA_COLUMNS} FROM media WHERE origin = $1 AND media_id = $2");
        let row: Option<MediaRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(origin).bind(media_id).fetch_optional(self.pool()).await?;
        Ok(row.map(to_record))
    }

    /// Records a completed upload (a new id).
    pub async fn insert_uploaded_media(&self, media: &UploadedMedia<'_>) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO media (origin, media_id, uploader, content_type, file_name, size_bytes, sha256, created_ts, uploaded_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(media.origin)
        .bind(media.media_id)
        .bind(media.uploader)
        .bind(media.content_type)
        .bind(media.file_name)
        .bind(media.size_bytes)
        .bind(media.sha256)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Reserves an id for an async upload; false when the user already has `max_pending`
    /// uploads pending.
    pub async fn reserve_media(
        &self,
        origin: &str,
        media_id: &str,
        uploader: &str,
        expires_ts: i64,
        max_pending: i64,
    ) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM media WHERE uploader = $1 AND size_bytes IS NULL AND unused_expires_ts > $2",
        )
        .bind(uploader)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if pending >= max_pending {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO media (origin, media_id, uploader, content_type, created_ts, unused_expires_ts)
             VALUES ($1, $2, $3, 'application/octet-stream', $4, $5)",
        )
        .bind(origin)
        .bind(media_id)
        .bind(uploader)
        .bind(now)
        .bind(expires_ts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Completes a reserved upload; false when it was completed already (or is unknown).
    pub async fn complete_reserved_media(&self, media: &UploadedMedia<'_>) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "UPDATE media SET content_type = $1, file_name = $2, size_bytes = $3, sha256 = $4, uploaded_ts = $5, unused_expires_ts = NULL
             WHERE origin = $6 AND media_id = $7 AND uploader = $8 AND size_bytes IS NULL",
        )
        .bind(media.content_type)
        .bind(media.file_name)
        .bind(media.size_bytes)
        .bind(media.sha256)
        .bind(now_ms())
        .bind(media.origin)
        .bind(media.media_id)
        .bind(media.uploader)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn touch_media(&self, origin: &str, media_id: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE media SET last_access_ts = $1 WHERE origin = $2 AND media_id = $3")
            .bind(now_ms())
            .bind(origin)
            .bind(media_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn thumbnails(&self, origin: &str, media_id: &str) -> sqlx::Result<Vec<ThumbnailRecord>> {
        let rows: Vec<(i64, i64, String, i64, String, i64)> = sqlx::query_as(
            "SELECT width, height, method, animated, content_type, size_bytes FROM media_thumbnails WHERE origin = $1 AND media_id = $2",
        )
        .bind(origin)
        .bind(media_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(width, height, method, animated, content_type, size_bytes)| ThumbnailRecord {
                width,
                height,
                method,
                animated: animated != 0,
                content_type,
                size_bytes,
            })
            .collect())
    }

    /// Records a generated thumbnail (a concurrent request may have stored the same one).
    pub async fn insert_thumbnail(
        &self,
        origin: &str,
        media_id: &str,
        thumbnail: &ThumbnailRecord,
    ) -> sqlx::Result<()> {
        let result = sqlx::query(
            "INSERT INTO media_thumbnails (origin, media_id, width, height, method, animated, content_type, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(origin)
        .bind(media_id)
        .bind(thumbnail.width)
        .bind(thumbnail.height)
        .bind(&thumbnail.method)
        .bind(i64::from(thumbnail.animated))
        .bind(&thumbnail.content_type)
        .bind(thumbnail.size_bytes)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if Backend::is_unique_violation(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
