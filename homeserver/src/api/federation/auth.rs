//! Inbound request authentication (spec: Server-Server API § Request Authentication): every
//! federation request except the key endpoints carries `Authorization: X-Matrix ...`, verified
//! here against the origin's key (fetched if need be) before any handler runs. Anything wrong
//! — no header, a malformed one, another destination, an unknown key, a bad signature — is a
//! 401 M_UNAUTHORIZED.

use axum::{
    body::Bytes,
    extract::{FromRequest, OriginalUri, Request},
    http::{StatusCode, header},
};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use hearth_federation::request_auth;
use ruma::OwnedServerName;
use serde::de::DeserializeOwned;

use crate::{
    api::extract::parse_json_body,
    error::{ApiError, ErrorKind},
    state::AppState,
    storage::now_ms,
};

/// A request another server signed: who sent it, and its JSON body (`{}` when it has none).
pub struct Signed<T> {
    pub origin: OwnedServerName,
    pub body: T,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, message)
}

impl<T: DeserializeOwned> FromRequest<AppState> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        // The signature covers the URI exactly as sent, before any routing rewrote it.
        let uri = match parts.extensions.remove::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri,
            None => parts.uri.clone(),
        };
        let headers: Vec<String> = parts
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter(|value| value.starts_with("X-Matrix "))
            .map(str::to_owned)
            .collect();
        let method = parts.method.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::TooLarge, "Request body is too large")
            } else {
                ApiError::new(ErrorKind::NotJson, "Could not read the request body")
            }
        })?;
        if headers.is_empty() {
            return Err(unauthorized("Missing X-Matrix authorization header"));
        }
        let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let signed = axum::http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(bytes.to_vec())
            .map_err(|_| unauthorized("Unparseable request URI"))?;
        let ours = state.federation.server_name();
        // Several headers may be sent (one per key); all must name the same origin, and one
        // that verifies is enough.
        let mut origin: Option<OwnedServerName> = None;
        let mut last_error = unauthorized("Invalid X-Matrix authorization");
        for value in &headers {
            let parsed = request_auth::parse_header(value).map_err(|error| unauthorized(error.to_string()))?;
            let claimed = request_auth::origin(&parsed).clone();
            if origin.as_ref().is_some_and(|first| *first != claimed) {
                return Err(unauthorized("X-Matrix headers name different origins"));
            }
            origin = Some(claimed.clone());
            if parsed.destination.as_deref().is_some_and(|destination| destination != ours) {
                return Err(unauthorized(format!("This request was meant for another server, not {ours}")));
            }
            let key = match state.remote_keys.public_key(&claimed, parsed.key.as_str(), now_ms()).await {
                Ok(key) => key,
                Err(error) => {
                    last_error = unauthorized(error.to_string());
                    continue;
                }
            };
            let Ok(key) = STANDARD_NO_PAD.decode(key) else {
                continue;
            };
            match request_auth::verify_request(&parsed, &signed, ours, &key) {
                Ok(()) => {
                    state.rate_limits.check(crate::services::rate_limit::RateClass::Federation, claimed.as_str())?;
                    // A peer that reaches us is up: anything queued for it goes now.
                    state.federation_sender.peer_is_up(claimed.as_str());
                    let body = parse_json_body(&bytes)?;
                    return Ok(Signed { origin: claimed, body });
                }
                Err(error) => last_error = unauthorized(format!("{error} (key {})", parsed.key)),
            }
        }
        Err(last_error)
    }
}
