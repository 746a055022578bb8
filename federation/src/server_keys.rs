//! Other servers' key documents (spec: Server-Server API § Retrieving server keys): checking a
//! `/_matrix/key/v2/server` response or one relayed by a notary, and verifying one signature of
//! one entity with one key.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue,
    signatures::{SigningKeyAlgorithm, to_canonical_json_string_for_signing, verify_canonical_json_bytes},
};

/// A checked key document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDocument {
    pub server_name: String,
    pub valid_until_ts: i64,
    /// (key id, unpadded base64 public key)
    pub verify_keys: Vec<(String, String)>,
    /// (key id, unpadded base64 public key, expired_ts)
    pub old_verify_keys: Vec<(String, String, i64)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyDocumentError {
    #[error("malformed key document: {0}")]
    Malformed(String),
    #[error("the key document is for {found}, not {expected}")]
    WrongServer { expected: String, found: String },
    #[error("the key document is not signed by {0}")]
    Unsigned(String),
}

/// Checks a key document claimed to be `expected_server`'s: well formed, for that server, and
/// signed by every key it lists as current (so whoever relayed it could not have added one).
pub fn check_key_document(
    document: &CanonicalJsonObject,
    expected_server: &str,
) -> Result<KeyDocument, KeyDocumentError> {
    let malformed = |what: &str| KeyDocumentError::Malformed(what.to_owned());
    let server_name = match document.get("server_name") {
        Some(CanonicalJsonValue::String(name)) => name.clone(),
        _ => return Err(malformed("`server_name` must be a string")),
    };
    if server_name != expected_server {
        return Err(KeyDocumentError::WrongServer { expected: expected_server.to_owned(), found: server_name });
    }
    let valid_until_ts = match document.get("valid_until_ts") {
        Some(CanonicalJsonValue::Integer(ts)) => i64::from(*ts),
        _ => return Err(malformed("`valid_until_ts` must be an integer")),
    };
    let keys_of = |field: &str| -> Result<Vec<(String, String, Option<i64>)>, KeyDocumentError> {
        let Some(value) = document.get(field) else {
            return Ok(Vec::new());
        };
        let CanonicalJsonValue::Object(keys) = value else {
            return Err(KeyDocumentError::Malformed(format!("`{field}` must be an object")));
        };
        keys.iter()
            .map(|(key_id, entry)| {
                let CanonicalJsonValue::Object(entry) = entry else {
                    return Err(KeyDocumentError::Malformed(format!("`{field}.{key_id}` must be an object")));
                };
                let key = match entry.get("key") {
                    Some(CanonicalJsonValue::String(key)) if STANDARD_NO_PAD.decode(key).is_ok() => key.clone(),
                    _ => return Err(KeyDocumentError::Malformed(format!("`{field}.{key_id}.key` must be base64"))),
                };
                let expired = match entry.get("expired_ts") {
                    Some(CanonicalJsonValue::Integer(ts)) => Some(i64::from(*ts)),
                    _ => None,
                };
                Ok((key_id.clone(), key, expired))
            })
            .collect()
    };
    let verify_keys: Vec<(String, String)> =
        keys_of("verify_keys")?.into_iter().map(|(id, key, _)| (id, key)).collect();
    if verify_keys.is_empty() {
        return Err(malformed("`verify_keys` lists no key"));
    }
    for (key_id, key) in &verify_keys {
        if !verify_signature(document, &server_name, key_id, key) {
            return Err(KeyDocumentError::Unsigned(format!("{server_name} ({key_id})")));
        }
    }
    let old_verify_keys =
        keys_of("old_verify_keys")?.into_iter().map(|(id, key, expired)| (id, key, expired.unwrap_or(0))).collect();
    Ok(KeyDocument { server_name, valid_until_ts, verify_keys, old_verify_keys })
}

/// Whether `object` carries a valid signature of `entity` made with `key_id`, whose public key
/// is `public_key_base64`.
pub fn verify_signature(object: &CanonicalJsonObject, entity: &str, key_id: &str, public_key_base64: &str) -> bool {
    let signature = match object.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => match signatures.get(entity) {
            Some(CanonicalJsonValue::Object(by_key)) => match by_key.get(key_id) {
                Some(CanonicalJsonValue::String(signature)) => signature.clone(),
                _ => return false,
            },
            _ => return false,
        },
        _ => return false,
    };
    let (Ok(signature), Ok(public_key)) =
        (STANDARD_NO_PAD.decode(signature.trim_end_matches('=')), STANDARD_NO_PAD.decode(public_key_base64))
    else {
        return false;
    };
    if !key_id.starts_with("ed25519:") {
        return false;
    }
    let Ok(canonical) = to_canonical_json_string_for_signing(object) else {
        return false;
    };
    verify_canonical_json_bytes(&SigningKeyAlgorithm::Ed25519, &public_key, &signature, canonical.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{SigningKey, to_canonical_object};

    fn document(server: &str, key: &SigningKey, valid_until_ts: i64) -> CanonicalJsonObject {
        let mut object = to_canonical_object(json!({
            "server_name": server,
            "verify_keys": {key.key_id(): {"key": key.public_key_base64()}},
            "old_verify_keys": {"ed25519:old": {"key": SigningKey::generate().public_key_base64(), "expired_ts": 5}},
            "valid_until_ts": valid_until_ts,
        }))
        .unwrap();
        key.sign_json(server, &mut object).unwrap();
        object
    }

    #[test]
    fn a_self_signed_document_checks_and_names_its_keys() {
        let key = SigningKey::generate();
        let checked = check_key_document(&document("a.example", &key, 99), "a.example").unwrap();
        assert_eq!(checked.valid_until_ts, 99);
        assert_eq!(checked.verify_keys, vec![(key.key_id(), key.public_key_base64())]);
        assert_eq!(checked.old_verify_keys[0].0, "ed25519:old");
        assert_eq!(checked.old_verify_keys[0].2, 5);
    }

    #[test]
    fn wrong_server_tampering_and_missing_signatures_are_refused() {
        let key = SigningKey::generate();
        let signed = document("a.example", &key, 99);
        assert!(matches!(check_key_document(&signed, "b.example"), Err(KeyDocumentError::WrongServer { .. })));

        let mut tampered = signed.clone();
        tampered.insert("valid_until_ts".into(), CanonicalJsonValue::Integer(ruma::Int::from(100_000u32)));
        assert!(matches!(check_key_document(&tampered, "a.example"), Err(KeyDocumentError::Unsigned(_))));

        // A relay that swaps in a key of its own cannot sign for the server.
        let intruder = SigningKey::generate();
        let mut swapped = to_canonical_object(json!({
            "server_name": "a.example",
            "verify_keys": {intruder.key_id(): {"key": intruder.public_key_base64()}},
            "valid_until_ts": 99,
        }))
        .unwrap();
        intruder.sign_json("b.example", &mut swapped).unwrap();
        assert!(matches!(check_key_document(&swapped, "a.example"), Err(KeyDocumentError::Unsigned(_))));

        let mut unsigned = signed;
        unsigned.remove("signatures");
        assert!(check_key_document(&unsigned, "a.example").is_err());
        assert!(check_key_document(&CanonicalJsonObject::new(), "a.example").is_err());
    }

    #[test]
    fn a_notary_signature_verifies_beside_the_servers_own() {
        let (origin, notary) = (SigningKey::generate(), SigningKey::generate());
        let mut relayed = document("a.example", &origin, 99);
        notary.sign_json("notary.example", &mut relayed).unwrap();
        assert!(check_key_document(&relayed, "a.example").is_ok());
        assert!(verify_signature(&relayed, "notary.example", &notary.key_id(), &notary.public_key_base64()));
        assert!(!verify_signature(&relayed, "notary.example", &notary.key_id(), &origin.public_key_base64()));
        assert!(!verify_signature(&relayed, "other.example", &notary.key_id(), &notary.public_key_base64()));
    }
}
