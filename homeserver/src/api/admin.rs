//! The admin API under `/_hearth/admin/v1`, what `hearthctl` drives: for now, moderating media
//! (look up, quarantine, delete). Callers authenticate with an ordinary access token of a user
//! listed in `[admin] users` or marked admin in the database.

use axum::{
    Json, Router,
    extract::{FromRequestParts, State},
    http::request::Parts,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixPath},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new().nest(
        "/_hearth/admin/v1",
        Router::new()
            .route("/media/{server_name}/{media_id}", get(media_info).delete(delete_media))
            .route("/media/{server_name}/{media_id}/quarantine", post(quarantine_media)),
    )
}

/// An authenticated administrator.
pub struct AdminUser(#[allow(dead_code)] pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let listed = state.config.admin.users.contains(&user.user_id);
        if listed || state.db.user(&user.user_id).await?.is_some_and(|record| record.is_admin) {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::forbidden("You are not a server admin"))
        }
    }
}

/// GET /_hearth/admin/v1/media/{serverName}/{mediaId}
async fn media_info(
    State(state): State<AppState>,
    _admin: AdminUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let record = state.media.info(&server_name, &media_id).await?;
    Ok(Json(json!({
        "content_uri": format!("mxc://{}/{}", record.origin, record.media_id),
        "uploader": record.uploader,
        "content_type": record.content_type,
        "file_name": record.file_name,
        "size": record.size_bytes,
        "created_ts": record.created_ts,
        "quarantined": record.quarantined,
        "deleted_ts": record.deleted_ts,
        "bytes_removed": record.purged,
    })))
}

/// POST /_hearth/admin/v1/media/{serverName}/{mediaId}/quarantine
async fn quarantine_media(
    State(state): State<AppState>,
    _admin: AdminUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.media.moderate(&server_name, &media_id, true, false).await?;
    Ok(Json(json!({})))
}

/// DELETE /_hearth/admin/v1/media/{serverName}/{mediaId}
async fn delete_media(
    State(state): State<AppState>,
    _admin: AdminUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.media.moderate(&server_name, &media_id, false, true).await?;
    Ok(Json(json!({})))
}
