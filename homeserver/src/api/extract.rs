//! Extractors that turn a request into typed input or a Matrix error, before any handler runs:
//! JSON bodies (M_NOT_JSON / M_BAD_JSON / M_TOO_LARGE), the access token (M_MISSING_TOKEN /
//! M_UNKNOWN_TOKEN, with soft logout for expired tokens) and the client's address.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request},
    http::{StatusCode, header, request::Parts},
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    error::{ApiError, ErrorKind},
    services::{rate_limit::RateClass, tokens::hash_token},
    state::AppState,
    storage::now_ms,
};

/// A JSON request body. An empty body reads as `{}` (clients send none to /logout and friends).
pub struct MatrixJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MatrixJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::TooLarge, "Request body is too large")
            } else {
                ApiError::new(ErrorKind::NotJson, "Could not read the request body")
            }
        })?;
        parse_json_body(&bytes).map(MatrixJson)
    }
}

/// Parses a body: not JSON at all is M_NOT_JSON; JSON of the wrong shape is M_BAD_JSON.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes).map_err(|_| ApiError::new(ErrorKind::NotJson, "Content not JSON."))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_json("Request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|error| ApiError::bad_json(format!("Invalid request body: {error}")))
}

/// Query parameters; a malformed query string is M_INVALID_PARAM, never axum's plain-text 400.
pub struct MatrixQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for MatrixQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(query)| MatrixQuery(query)).map_err(|rejection| {
            ApiError::invalid_param(format!("Invalid query parameters: {}", rejection.body_text()))
        })
    }
}

/// Path parameters (percent-decoded); undecodable segments are M_INVALID_PARAM.
pub struct MatrixPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for MatrixPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // No identifier may contain NUL (and PostgreSQL text cannot store one).
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(ApiError::invalid_param("Path parameters may not contain NUL characters"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(path)| MatrixPath(path))
            .map_err(|rejection| ApiError::invalid_param(format!("Invalid path parameters: {}", rejection.body_text())))
    }
}

/// The authenticated caller of an endpoint that requires an access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub device_id: String,
    /// A guest account (spec: § Guest access); it only gets past this extractor on the routes
    /// guests may use.
    pub is_guest: bool,
}

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

/// How stale `last_seen_ts` may get before a request refreshes it: one write per device per
/// five minutes, not one per request.
const LAST_SEEN_GRANULARITY_MS: i64 = 5 * 60 * 1000;

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Boxed: the lookup's state would otherwise be part of every handler's future, which a
        // waiting /sync long-poll keeps for its whole wait.
        Box::pin(authenticate(parts, state, false)).await
    }
}

/// The caller of /logout and /logout/all, which accept an expired access token (as Synapse
/// does): a soft-logged-out client must still be able to end its session.
pub struct AuthUserAllowExpired(pub AuthUser);

impl FromRequestParts<AppState> for AuthUserAllowExpired {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, true).await.map(AuthUserAllowExpired)
    }
}

async fn authenticate(parts: &Parts, state: &AppState, allow_expired: bool) -> Result<AuthUser, ApiError> {
    let token = access_token(parts)?;
    let token_hash = hash_token(&token);
    let record =
        state.db.lookup_access_token(&token_hash).await?.ok_or_else(|| {
            ApiError::new(ErrorKind::UnknownToken { soft_logout: false }, "Unrecognised access token")
        })?;
    let now = now_ms();
    if !allow_expired && record.expires_ts.is_some_and(|expires| expires <= now) {
        // Spec: an expired refreshable token is a soft logout; the client refreshes.
        return Err(ApiError::new(ErrorKind::UnknownToken { soft_logout: true }, "Access token has expired"));
    }
    if record.is_guest {
        let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or_default();
        if !super::guest_access::guest_may_use(&parts.method, route) {
            return Err(ApiError::new(ErrorKind::GuestAccessForbidden, "Guest access is not allowed here"));
        }
    }
    state.rate_limits.check(RateClass::Client, &record.user_id)?;
    if record.last_seen_ts.is_none_or(|seen| now - seen > LAST_SEEN_GRANULARITY_MS) {
        let ip = ClientIp::from_parts(parts, state.config.listen.x_forwarded).0;
        let db = state.db.clone();
        let (user_id, device_id) = (record.user_id.clone(), record.device_id.clone());
        tokio::spawn(async move {
            if let Err(error) = db.touch_device(&token_hash, &user_id, &device_id, &ip, now).await {
                tracing::warn!(%error, "could not record device last-seen");
            }
        });
    }
    Ok(AuthUser { user_id: record.user_id, device_id: record.device_id, is_guest: record.is_guest })
}

/// The token from `Authorization: Bearer …`, or the deprecated `access_token` query parameter.
fn access_token(parts: &Parts) -> Result<String, ApiError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return match value.strip_prefix("Bearer ") {
            Some(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            _ => Err(ApiError::new(ErrorKind::MissingToken, "Invalid Authorization header: expected 'Bearer <token>'")),
        };
    }
    match Query::<AccessTokenQuery>::try_from_uri(&parts.uri) {
        Ok(Query(AccessTokenQuery { access_token: Some(token) })) if !token.is_empty() => Ok(token),
        _ => Err(ApiError::new(ErrorKind::MissingToken, "Missing access token")),
    }
}

/// The client's IP address: the socket peer, or with `listen.x_forwarded` the first address in
/// X-Forwarded-For (set by the reverse proxy in front of Hearth).
pub struct ClientIp(pub String);

impl ClientIp {
    fn from_parts(parts: &Parts, trust_forwarded: bool) -> Self {
        if trust_forwarded
            && let Some(forwarded) = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
            && let Some(first) = forwarded.split(',').map(str::trim).find(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        {
            return Self(first.to_owned());
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Self(ip)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts, state.config.listen.x_forwarded))
    }
}

/// Every value of `key` in a query string, decoded (`?via=a&via=b`): repeated keys, which
/// serde_urlencoded cannot collect into a list.
pub fn query_values(uri: &axum::http::Uri, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix(prefix.as_str()))
        .map(|value| percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
        .collect()
}

/// A non-negative whole-number query parameter (`limit`, `max_depth`): absent is None, anything
/// else but a number is M_INVALID_PARAM.
pub fn numeric_param(value: Option<&str>, name: &str) -> crate::error::ApiResult<Option<usize>> {
    value
        .map(|v| v.parse::<usize>().map_err(|_| ApiError::invalid_param(format!("{name} must be a number"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn bodies_map_to_the_right_errcodes() {
        let kind = |bytes: &[u8]| parse_json_body::<Body>(bytes).unwrap_err().kind;
        assert_eq!(kind(b"{not json"), ErrorKind::NotJson);
        assert_eq!(kind(b"\xff\xfe"), ErrorKind::NotJson);
        assert_eq!(kind(b"[1,2]"), ErrorKind::BadJson);
        assert_eq!(kind(br#"{"name": 5}"#), ErrorKind::BadJson);
        assert_eq!(kind(b""), ErrorKind::BadJson, "empty reads as {{}} which lacks `name`");
        assert!(parse_json_body::<Body>(br#"{"name": "x", "extra": true}"#).is_ok());
    }
}
