//! Authenticating server-to-server requests (spec: Server-Server API § Request Authentication):
//! the `Authorization: X-Matrix origin=…,destination=…,key=…,sig=…` header, whose signature
//! covers canonical JSON of `{method, uri, origin, destination, content}`, with `uri` exactly as
//! sent (path and query, percent-encoding kept). ruma-federation-api does the work; this module
//! fixes how Hearth calls it.

use ruma::{
    OwnedServerName, ServerName,
    api::federation::authentication::{XMatrix, XMatrixSigningInput},
    signatures::{PublicKeyMap, PublicKeySet},
};

use crate::SigningKey;

/// Why an incoming request's X-Matrix header was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestAuthError {
    #[error("malformed X-Matrix authorization: {0}")]
    Malformed(String),
    #[error("the request was meant for another server")]
    WrongDestination,
    #[error("the signature does not verify")]
    BadSignature,
}

/// The `Authorization` header value for a request from `origin` to `destination`.
pub fn sign_request(
    key: &SigningKey,
    origin: &ServerName,
    destination: &ServerName,
    request: &http::Request<Vec<u8>>,
) -> Result<String, RequestAuthError> {
    let input = XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), key.key_pair());
    let header = XMatrix::sign_http_request(request, input).map_err(|e| RequestAuthError::Malformed(e.to_string()))?;
    Ok(header.to_string())
}

/// The parsed header of an incoming request: who claims to send it, with which key.
pub fn parse_header(value: &str) -> Result<XMatrix, RequestAuthError> {
    XMatrix::parse(value).map_err(|e| RequestAuthError::Malformed(e.to_string()))
}

/// Verifies an incoming request's header against the origin's public key (`public_key`, the
/// raw 32 bytes of the key named in the header); `ours` is this server's name.
pub fn verify_request(
    header: &XMatrix,
    request: &http::Request<Vec<u8>>,
    ours: &ServerName,
    public_key: &[u8],
) -> Result<(), RequestAuthError> {
    if header.destination.as_deref().is_some_and(|destination| destination != ours) {
        return Err(RequestAuthError::WrongDestination);
    }
    let mut keys = PublicKeySet::new();
    keys.insert(header.key.to_string(), ruma::serde::Base64::new(public_key.to_vec()));
    let mut map = PublicKeyMap::new();
    map.insert(header.origin.to_string(), keys);
    header.verify_http_request(request, ours, &map).map_err(|_| RequestAuthError::BadSignature)
}

/// The origin server a parsed header names.
pub fn origin(header: &XMatrix) -> &OwnedServerName {
    &header.origin
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};

    use super::*;

    fn request(method: &str, uri: &str, body: &str) -> http::Request<Vec<u8>> {
        http::Request::builder().method(method).uri(uri).body(body.as_bytes().to_vec()).unwrap()
    }

    fn name(server: &str) -> OwnedServerName {
        ServerName::parse(server).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_and_nothing_else_does() {
        let key = SigningKey::generate();
        let public = STANDARD_NO_PAD.decode(key.public_key_base64()).unwrap();
        let (origin, ours) = (name("hearth.example:8448"), name("synapse.example"));
        let sent = request("PUT", "/_matrix/federation/v1/send/1?x=%2F", r#"{"pdus":[],"edus":[]}"#);
        let value = sign_request(&key, &origin, &ours, &sent).unwrap();
        assert!(value.starts_with("X-Matrix "), "{value}");
        let header = parse_header(&value).unwrap();
        assert_eq!(origin_of(&header), "hearth.example:8448");
        verify_request(&header, &sent, &ours, &public).expect("verifies");

        // Another destination, another path or query, another body, another key: refused.
        assert!(matches!(
            verify_request(&header, &sent, &name("other.example"), &public),
            Err(RequestAuthError::WrongDestination)
        ));
        for tampered in [
            request("PUT", "/_matrix/federation/v1/send/2?x=%2F", r#"{"pdus":[],"edus":[]}"#),
            request("PUT", "/_matrix/federation/v1/send/1?x=/", r#"{"pdus":[],"edus":[]}"#),
            request("PUT", "/_matrix/federation/v1/send/1?x=%2F", r#"{"pdus":[{}],"edus":[]}"#),
            request("POST", "/_matrix/federation/v1/send/1?x=%2F", r#"{"pdus":[],"edus":[]}"#),
        ] {
            assert!(matches!(verify_request(&header, &tampered, &ours, &public), Err(RequestAuthError::BadSignature)));
        }
        let other = STANDARD_NO_PAD.decode(SigningKey::generate().public_key_base64()).unwrap();
        assert!(verify_request(&header, &sent, &ours, &other).is_err());
    }

    #[test]
    fn headers_as_synapse_writes_them_parse() {
        let header = parse_header(
            r#"X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF""#,
        )
        .unwrap();
        assert_eq!(origin_of(&header), "origin.hs.example.com");
        assert_eq!(header.destination.as_deref().map(ServerName::as_str), Some("destination.hs.example.com"));
        assert_eq!(header.key.as_str(), "ed25519:key1");
        for bad in ["", "Bearer abc", "X-Matrix origin=", r#"X-Matrix key="ed25519:k",sig="AA""#] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    fn origin_of(header: &XMatrix) -> &str {
        origin(header).as_str()
    }
}
