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
    /// The bytes are gone from the store.
    pub purged: bool,
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
    (String, String, Option<String>, String, Option<String>, Option<i64>, i64, Option<i64>, i64, Option<i64>, i64);

const MEDIA_COLUMNS: &str = "origin, media_id, uploader, content_type, file_name, size_bytes, created_ts, unused_expires_ts, quarantined, deleted_ts, purged";

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
        purged,
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
        purged: purged != 0,
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
        let mut tx = self.begin_write().await?;
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

/// Drops what `holder` (an event or `profile:<user>`) refers to, and marks the media nothing
/// refers to any more as deleted at `now` (unreachable at once; the bytes go after the grace
/// period). Runs inside the transaction that removes the holder.
pub(super) async fn release_references(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    holder: &str,
    now: i64,
) -> sqlx::Result<()> {
    let released: Vec<(String, String)> =
        sqlx::query_as("DELETE FROM media_references WHERE holder = $1 RETURNING origin, media_id")
            .bind(holder)
            .fetch_all(&mut **tx)
            .await?;
    for (origin, media_id) in released {
        sqlx::query(
            "UPDATE media SET deleted_ts = $1 WHERE origin = $2 AND media_id = $3 AND deleted_ts IS NULL
             AND NOT EXISTS (SELECT 1 FROM media_references r WHERE r.origin = $2 AND r.media_id = $3)",
        )
        .bind(now)
        .bind(&origin)
        .bind(&media_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// A user's avatar is a reference too: the new one replaces the old (which is not deleted:
    /// nothing was redacted, and the user may pick it again).
    pub async fn set_profile_media(&self, user_id: &str, avatar: Option<(&str, &str)>) -> sqlx::Result<()> {
        let holder = format!("profile:{user_id}");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM media_references WHERE holder = $1").bind(&holder).execute(&mut *tx).await?;
        if let Some((origin, media_id)) = avatar {
            sqlx::query("INSERT INTO media_references (origin, media_id, holder) VALUES ($1, $2, $3)")
                .bind(origin)
                .bind(media_id)
                .bind(&holder)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Admin: quarantine (unreachable, bytes kept for review) or delete (unreachable, bytes go
    /// after the grace period). False when the media is unknown.
    pub async fn set_media_state(
        &self,
        origin: &str,
        media_id: &str,
        quarantined: bool,
        deleted: bool,
    ) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "UPDATE media SET quarantined = $1, deleted_ts = CASE WHEN $2 = 1 THEN COALESCE(deleted_ts, $3) ELSE deleted_ts END
             WHERE origin = $4 AND media_id = $5",
        )
        .bind(i64::from(quarantined))
        .bind(i64::from(deleted))
        .bind(now_ms())
        .bind(origin)
        .bind(media_id)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Media whose bytes may go, at most `limit`: deleted before `deleted_before`; async
    /// reservations that expired unused; and (when `unused_before` is set) local media nothing
    /// refers to and nobody downloaded since then.
    pub async fn media_to_purge(
        &self,
        deleted_before: i64,
        unused_before: Option<i64>,
        local_origin: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT origin, media_id FROM media WHERE purged = 0 AND (
                 (deleted_ts IS NOT NULL AND deleted_ts < $1)
                 OR (size_bytes IS NULL AND unused_expires_ts < $5)
                 OR ($2 > 0 AND origin = $3 AND size_bytes IS NOT NULL AND COALESCE(last_access_ts, uploaded_ts) < $2
                     AND NOT EXISTS (SELECT 1 FROM media_references r WHERE r.origin = media.origin AND r.media_id = media.media_id)))
             LIMIT $4",
        )
        .bind(deleted_before)
        .bind(unused_before.unwrap_or(0))
        .bind(local_origin)
        .bind(limit)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await
    }

    /// The bytes are gone: the record stays (the id is never reused), marked deleted and purged,
    /// and its thumbnails are forgotten.
    pub async fn mark_media_purged(&self, origin: &str, media_id: &str) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE media SET purged = 1, deleted_ts = COALESCE(deleted_ts, $1) WHERE origin = $2 AND media_id = $3",
        )
        .bind(now_ms())
        .bind(origin)
        .bind(media_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2")
            .bind(origin)
            .bind(media_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}
