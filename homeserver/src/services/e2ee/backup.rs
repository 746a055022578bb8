//! Server-side key backup (spec: Client-Server API § Server-side key backups): versions with
//! their algorithm and auth data, and the encrypted room keys in each. Writes go to the current
//! (newest) version only; writing to an older one answers M_WRONG_ROOM_KEYS_VERSION with the
//! current version, so a client with a stale backup learns to switch.

use serde_json::{Map, Value, json};

use crate::{
    error::{ApiError, ApiResult, ErrorKind},
    storage::{
        Db,
        key_backup::{BackupSession, BackupVersion},
    },
};

pub struct KeyBackup {
    db: Db,
}

/// Which keys of a version a request is about: all, a room's, or one session.
#[derive(Clone, Copy)]
pub struct Selector<'a> {
    pub room_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

fn parse_version(version: &str) -> ApiResult<i64> {
    version.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| ApiError::not_found("Unknown backup version"))
}

fn auth_data(body: &Value) -> ApiResult<(String, String)> {
    let algorithm =
        body.get("algorithm").and_then(Value::as_str).ok_or_else(|| ApiError::bad_json("algorithm is required"))?;
    let auth_data = body
        .get("auth_data")
        .filter(|a| a.is_object())
        .ok_or_else(|| ApiError::bad_json("auth_data must be an object"))?;
    Ok((algorithm.to_owned(), serde_json::to_string(auth_data).map_err(ApiError::internal)?))
}

impl KeyBackup {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// POST /room_keys/version
    pub async fn create(&self, user_id: &str, body: &Value) -> ApiResult<Value> {
        let (algorithm, auth_data) = auth_data(body)?;
        let version = self.db.create_backup_version(user_id, &algorithm, &auth_data).await?;
        Ok(json!({"version": version.to_string()}))
    }

    async fn version(&self, user_id: &str, version: Option<&str>) -> ApiResult<BackupVersion> {
        let number = version.map(parse_version).transpose()?;
        self.db.backup_version(user_id, number).await?.ok_or_else(|| ApiError::not_found("No backup version found"))
    }

    /// GET /room_keys/version[/{version}]
    pub async fn describe(&self, user_id: &str, version: Option<&str>) -> ApiResult<Value> {
        let found = self.version(user_id, version).await?;
        let count = self.db.backup_session_count(user_id, found.version).await?;
        Ok(json!({
            "version": found.version.to_string(),
            "algorithm": found.algorithm,
            "auth_data": serde_json::from_str::<Value>(&found.auth_data).unwrap_or_default(),
            "count": count,
            "etag": found.etag.to_string(),
        }))
    }

    /// PUT /room_keys/version/{version}: new auth data; the algorithm cannot change.
    pub async fn update(&self, user_id: &str, version: &str, body: &Value) -> ApiResult<()> {
        let found = self.version(user_id, Some(version)).await?;
        let (algorithm, auth_data) = auth_data(body)?;
        if let Some(in_body) = body.get("version")
            && in_body.as_str() != Some(version)
        {
            return Err(ApiError::invalid_param("The version in the body does not match the path"));
        }
        if algorithm != found.algorithm {
            return Err(ApiError::invalid_param("A backup's algorithm cannot change; create a new version"));
        }
        self.db.update_backup_auth_data(user_id, found.version, &auth_data).await?;
        Ok(())
    }

    /// DELETE /room_keys/version/{version}
    pub async fn delete(&self, user_id: &str, version: &str) -> ApiResult<()> {
        let number = parse_version(version)?;
        if self.db.delete_backup_version(user_id, number).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("Unknown backup version"))
        }
    }

    /// The version writes may go to: it must exist and be the current one.
    async fn writable(&self, user_id: &str, version: &str) -> ApiResult<BackupVersion> {
        let found = self.version(user_id, Some(version)).await?;
        let current = self.db.backup_version(user_id, None).await?;
        if current.as_ref().is_some_and(|c| c.version != found.version) {
            return Err(ApiError::new(
                ErrorKind::WrongRoomKeysVersion { current_version: current.map(|c| c.version.to_string()) },
                "This is not the current backup version",
            ));
        }
        Ok(found)
    }

    async fn counts(&self, user_id: &str, version: i64) -> ApiResult<Value> {
        let found = self
            .db
            .backup_version(user_id, Some(version))
            .await?
            .ok_or_else(|| ApiError::not_found("No backup version found"))?;
        let count = self.db.backup_session_count(user_id, version).await?;
        Ok(json!({"etag": found.etag.to_string(), "count": count}))
    }

    /// PUT /room_keys/keys[/{roomId}[/{sessionId}]]: `body` is the rooms map, a room's
    /// sessions map, or one session, as the path says.
    pub async fn put(&self, user_id: &str, version: &str, at: Selector<'_>, body: &Value) -> ApiResult<Value> {
        let found = self.writable(user_id, version).await?;
        let mut sessions = Vec::new();
        match (at.room_id, at.session_id) {
            (Some(room_id), Some(session_id)) => sessions.push(session(room_id, session_id, body)?),
            (Some(room_id), None) => add_room(&mut sessions, room_id, body)?,
            _ => {
                let rooms = body
                    .get("rooms")
                    .and_then(Value::as_object)
                    .ok_or_else(|| ApiError::bad_json("rooms must be an object"))?;
                for (room_id, room) in rooms {
                    add_room(&mut sessions, room_id, room)?;
                }
            }
        }
        self.db.put_backup_sessions(user_id, found.version, &sessions).await?;
        self.counts(user_id, found.version).await
    }

    /// GET /room_keys/keys[/{roomId}[/{sessionId}]]
    pub async fn get(&self, user_id: &str, version: &str, at: Selector<'_>) -> ApiResult<Value> {
        let found = self.version(user_id, Some(version)).await?;
        let stored = self.db.backup_sessions(user_id, found.version, at.room_id, at.session_id).await?;
        let as_json = |s: &BackupSession| {
            json!({
                "first_message_index": s.first_message_index,
                "forwarded_count": s.forwarded_count,
                "is_verified": s.is_verified,
                "session_data": serde_json::from_str::<Value>(&s.session_data).unwrap_or_default(),
            })
        };
        match (at.room_id, at.session_id) {
            (Some(_), Some(_)) => {
                stored.first().map(as_json).ok_or_else(|| ApiError::not_found("No key found for this session"))
            }
            (Some(_), None) => {
                let sessions: Map<String, Value> = stored.iter().map(|s| (s.session_id.clone(), as_json(s))).collect();
                Ok(json!({"sessions": sessions}))
            }
            _ => {
                let mut rooms = Map::new();
                for s in &stored {
                    let room = rooms.entry(s.room_id.clone()).or_insert_with(|| json!({"sessions": {}}));
                    room["sessions"][&s.session_id] = as_json(s);
                }
                Ok(json!({"rooms": rooms}))
            }
        }
    }

    /// DELETE /room_keys/keys[/{roomId}[/{sessionId}]]
    pub async fn remove(&self, user_id: &str, version: &str, at: Selector<'_>) -> ApiResult<Value> {
        let found = self.version(user_id, Some(version)).await?;
        self.db.delete_backup_sessions(user_id, found.version, at.room_id, at.session_id).await?;
        self.counts(user_id, found.version).await
    }
}

fn add_room(sessions: &mut Vec<BackupSession>, room_id: &str, room: &Value) -> ApiResult<()> {
    let map = room
        .get("sessions")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_json("sessions must be an object"))?;
    for (session_id, data) in map {
        sessions.push(session(room_id, session_id, data)?);
    }
    Ok(())
}

fn session(room_id: &str, session_id: &str, data: &Value) -> ApiResult<BackupSession> {
    let number = |field: &str| {
        data.get(field)
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_json(format!("{field} must be a non-negative integer")))
    };
    let session_data = data
        .get("session_data")
        .filter(|d| d.is_object())
        .ok_or_else(|| ApiError::bad_json("session_data must be an object"))?;
    Ok(BackupSession {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        first_message_index: number("first_message_index")?,
        forwarded_count: number("forwarded_count")?,
        is_verified: data
            .get("is_verified")
            .and_then(Value::as_bool)
            .ok_or_else(|| ApiError::bad_json("is_verified must be a boolean"))?,
        session_data: serde_json::to_string(session_data).map_err(ApiError::internal)?,
    })
}
