//! User profiles: display name and avatar (spec: Client-Server API § Profiles).

use crate::{
    error::{ApiError, ApiResult},
    services::{
        federation::{FederationClient, FederationError, query_value},
        usernames::server_of,
    },
    storage::Db,
};

#[derive(Debug, Default)]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

/// The profile fields Hearth stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileField {
    Displayname,
    AvatarUrl,
}

impl ProfileField {
    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "displayname" => Some(Self::Displayname),
            "avatar_url" => Some(Self::AvatarUrl),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Displayname => "displayname",
            Self::AvatarUrl => "avatar_url",
        }
    }
}

const MAX_DISPLAYNAME_BYTES: usize = 256;

pub struct Profiles {
    db: Db,
    /// Member events carry the profile into rooms.
    rooms: std::sync::Arc<crate::services::rooms::Rooms>,
    /// Other servers' users' profiles are asked of their server.
    federation: std::sync::Arc<FederationClient>,
    server_name: String,
}

impl Profiles {
    pub fn new(
        db: Db,
        rooms: std::sync::Arc<crate::services::rooms::Rooms>,
        federation: std::sync::Arc<FederationClient>,
        server_name: String,
    ) -> Self {
        Self { db, rooms, federation, server_name }
    }

    /// A user's profile: local users' from storage, other servers' users' from their server
    /// (GET /_matrix/federation/v1/query/profile); M_NOT_FOUND for unknown users.
    pub async fn get(&self, user_id: &str) -> ApiResult<Profile> {
        let server = server_of(user_id);
        if server != self.server_name {
            let destination =
                ruma::ServerName::parse(server).map_err(|_| ApiError::invalid_param("Invalid user id"))?;
            let path = format!("/_matrix/federation/v1/query/profile?user_id={}", query_value(user_id));
            let answer = self.federation.get(&destination, &path).await.map_err(FederationError::into_api_error)?;
            let text = |field: &str| answer.get(field).and_then(serde_json::Value::as_str).map(str::to_owned);
            return Ok(Profile { displayname: text("displayname"), avatar_url: text("avatar_url") });
        }
        match self.db.user(user_id).await? {
            Some(user) => Ok(Profile { displayname: user.displayname, avatar_url: user.avatar_url }),
            None => Err(ApiError::not_found("Profile not found")),
        }
    }

    /// Sets one field of the requester's own profile; None (or an empty string) clears it.
    pub async fn set(&self, requester: &str, target: &str, field: ProfileField, value: Option<&str>) -> ApiResult<()> {
        if requester != target {
            return Err(ApiError::forbidden("You may only change your own profile"));
        }
        let value = value.filter(|v| !v.is_empty());
        match field {
            ProfileField::Displayname => {
                if let Some(name) = value
                    && (name.len() > MAX_DISPLAYNAME_BYTES || name.chars().any(char::is_control))
                {
                    return Err(ApiError::invalid_param(
                        "Display name must be at most 256 bytes, without control characters",
                    ));
                }
                self.db.set_displayname(requester, value).await?;
            }
            ProfileField::AvatarUrl => {
                if let Some(url) = value
                    && !is_mxc_uri(url)
                {
                    return Err(ApiError::invalid_param("avatar_url must be an mxc:// URI"));
                }
                self.db.set_avatar_url(requester, value).await?;
                // The avatar keeps its media from being removed while it is in use.
                let media = value.and_then(crate::services::media::refs::parse_mxc);
                self.db.set_profile_media(requester, media.as_ref().map(|(o, m)| (o.as_str(), m.as_str()))).await?;
            }
        }
        self.rooms.refresh_profile(requester).await
    }
}

/// `mxc://<server-name>/<media-id>` where the media id is `[A-Za-z0-9_-]+` (spec: Content repository).
fn is_mxc_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("mxc://") else { return false };
    let Some((server, media_id)) = rest.split_once('/') else { return false };
    ruma::ServerName::parse(server).is_ok()
        && !media_id.is_empty()
        && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_mxc_uri;

    #[test]
    fn only_mxc_uris_are_avatars() {
        assert!(is_mxc_uri("mxc://localhost/abcDEF123_-"));
        assert!(is_mxc_uri("mxc://example.org:8448/x"));
        for bad in
            ["http://x/y", "mxc://", "mxc://localhost", "mxc://localhost/", "mxc://localhost/a/b", "mxc://local host/a"]
        {
            assert!(!is_mxc_uri(bad), "{bad}");
        }
    }
}
