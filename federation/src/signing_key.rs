//! The server's ed25519 signing key: generated on first start, kept in the data directory, used
//! to sign JSON (server key documents, events, federation requests) as the spec's
//! "Signing JSON" appendix describes. ruma-signatures does the signing itself.

use std::{io, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use rand::Rng;
use ruma::{
    CanonicalJsonObject,
    signatures::{Ed25519KeyPair, KeyPair},
};

/// Errors loading, creating or using the signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read or write the signing key file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the signing key file {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error("cannot sign JSON: {0}")]
    Sign(String),
}

/// The server's signing key and its key id version (the `abc` in `ed25519:abc`).
pub struct SigningKey {
    key_pair: Ed25519KeyPair,
    version: String,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

const ALGORITHM: &str = "ed25519";

impl SigningKey {
    /// Loads the key from `path`, or generates a new one there (mode 0600) if none exists.
    ///
    /// The file holds one line: `ed25519 <version> <unpadded base64 of a PKCS#8 document>`.
    pub fn load_or_generate(path: &Path) -> Result<Self, SigningKeyError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|reason| SigningKeyError::Malformed { path: shown, reason }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let (key, contents) = Self::generate_with_file_contents();
                write_private_file(path, contents.as_bytes())
                    .map_err(|source| SigningKeyError::Io { path: shown, source })?;
                Ok(key)
            }
            Err(source) => Err(SigningKeyError::Io { path: shown, source }),
        }
    }

    /// A fresh key with a random version such as `a_Xk3q`.
    pub fn generate() -> Self {
        Self::generate_with_file_contents().0
    }

    /// A fresh key and the line that stores it (ruma does not hand the PKCS#8 document back out
    /// of a key pair, so it is written down at the moment it is made).
    fn generate_with_file_contents() -> (Self, String) {
        let document = Ed25519KeyPair::generate();
        let suffix: String =
            rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(4).map(char::from).collect();
        let version = format!("a_{suffix}");
        let contents = format!("{ALGORITHM} {version} {}\n", STANDARD_NO_PAD.encode(&*document));
        let key_pair = Ed25519KeyPair::from_der(&document, version.clone()).expect("a freshly generated key parses");
        (Self { key_pair, version }, contents)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split_whitespace();
        let (Some(algorithm), Some(version), Some(encoded), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("expected `ed25519 <version> <key>` on one line".into());
        };
        if algorithm != ALGORITHM {
            return Err(format!("unsupported algorithm {algorithm}"));
        }
        let document = STANDARD_NO_PAD.decode(encoded).map_err(|e| format!("bad base64: {e}"))?;
        let key_pair = Ed25519KeyPair::from_der(&document, version.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { key_pair, version: version.to_owned() })
    }

    /// The key id, e.g. `ed25519:a_Xk3q`.
    pub fn key_id(&self) -> String {
        format!("{ALGORITHM}:{}", self.version)
    }

    /// The public key, unpadded standard base64, as it appears in a server key document.
    pub fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.key_pair.public_key())
    }

    /// Signs `object` in place as `server_name`, adding to its `signatures`.
    pub fn sign_json(&self, server_name: &str, object: &mut CanonicalJsonObject) -> Result<(), SigningKeyError> {
        ruma::signatures::sign_json(server_name, &self.key_pair, object)
            .map_err(|e| SigningKeyError::Sign(e.to_string()))
    }

    /// Adds the content hash to a new event and signs its redacted form (spec: Server-Server
    /// API § Signing Events).
    pub fn hash_and_sign_event(
        &self,
        server_name: &str,
        event: &mut CanonicalJsonObject,
        rules: &ruma::room_version_rules::RoomVersionRules,
    ) -> Result<(), String> {
        ruma::signatures::hash_and_sign_event(server_name, &self.key_pair, event, &rules.redaction)
            .map_err(|e| e.to_string())
    }

    /// The key pair, for ruma functions that sign with it (request signing).
    pub fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key_pair
    }

    /// Signs raw bytes (used by tests and request signing).
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.key_pair.sign(message).as_bytes().to_vec()
    }
}

/// A key this server signed with before a rotation: still published (as `old_verify_keys`) so
/// signatures made with it, on events especially, keep verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldVerifyKey {
    pub key_id: String,
    /// Unpadded standard base64.
    pub public_key: String,
    /// When the key stopped being used (milliseconds since the epoch).
    pub expired_ts: i64,
}

/// The old keys kept in `path` (one `<key id> <public key> <expired_ts>` line each); none when
/// the file does not exist.
pub fn load_old_keys(path: &Path) -> Result<Vec<OldVerifyKey>, SigningKeyError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SigningKeyError::Io { path: shown, source }),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next().map(str::parse::<i64>), parts.next()) {
                (Some(key_id), Some(public_key), Some(Ok(expired_ts)), None) if key_id.starts_with("ed25519:") => {
                    Ok(OldVerifyKey { key_id: key_id.to_owned(), public_key: public_key.to_owned(), expired_ts })
                }
                _ => Err(SigningKeyError::Malformed {
                    path: shown.clone(),
                    reason: format!("expected `<key id> <public key> <expired_ts>`, found {line:?}"),
                }),
            }
        })
        .collect()
}

/// Replaces the signing key at `key_path` with a new one, adding the old one's public half to
/// `old_keys_path` as expired at `now_ms`. Returns (old key id, new key id). The server must
/// be restarted to sign with the new key.
pub fn rotate(key_path: &Path, old_keys_path: &Path, now_ms: i64) -> Result<(String, String), SigningKeyError> {
    let current = SigningKey::load_or_generate(key_path)?;
    let mut old = load_old_keys(old_keys_path)?;
    old.retain(|key| key.key_id != current.key_id());
    old.push(OldVerifyKey { key_id: current.key_id(), public_key: current.public_key_base64(), expired_ts: now_ms });
    let (mut fresh, mut contents) = SigningKey::generate_with_file_contents();
    // Versions are random; a clash with a key published before would confuse its verifiers.
    while fresh.key_id() == current.key_id() || old.iter().any(|key| key.key_id == fresh.key_id()) {
        (fresh, contents) = SigningKey::generate_with_file_contents();
    }
    let listing: String =
        old.iter().map(|key| format!("{} {} {}\n", key.key_id, key.public_key, key.expired_ts)).collect();
    // The old key is recorded before the new one replaces it: a crash in between leaves the
    // current key in use and merely listed as old too.
    replace_private_file(old_keys_path, listing.as_bytes())
        .map_err(|source| SigningKeyError::Io { path: old_keys_path.display().to_string(), source })?;
    replace_private_file(key_path, contents.as_bytes())
        .map_err(|source| SigningKeyError::Io { path: key_path.display().to_string(), source })?;
    Ok((current.key_id(), fresh.key_id()))
}

/// Writes `contents` to a new file beside `path`, then renames it over `path`.
fn replace_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    write_private_file(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{CanonicalJsonValue, serde::Base64, signatures::PublicKeyMap};
    use std::collections::BTreeMap;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-key-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("signing.key")
    }

    /// The key of the spec's "Cryptographic Test Vectors" appendix: seed
    /// `YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`, key id `ed25519:1`.
    fn spec_key() -> SigningKey {
        // The seed's last character carries stray low bits: decoded leniently, as the spec's
        // own tools (and Synapse) do.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let seed = lenient.decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1").unwrap();
        // A PKCS#8 v1 document around the 32-byte seed (RFC 8410).
        let mut document =
            vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        document.extend_from_slice(&seed);
        let key_pair = Ed25519KeyPair::from_der(&document, "1".into()).unwrap();
        SigningKey { key_pair, version: "1".into() }
    }

    fn object(value: serde_json::Value) -> CanonicalJsonObject {
        crate::to_canonical_object(value).unwrap()
    }

    fn signature(signed: &CanonicalJsonObject) -> String {
        let CanonicalJsonValue::Object(signatures) = &signed["signatures"] else { panic!("no signatures") };
        let CanonicalJsonValue::Object(by_domain) = &signatures["domain"] else { panic!("no domain signature") };
        let CanonicalJsonValue::String(signature) = &by_domain["ed25519:1"] else { panic!("no ed25519:1") };
        signature.clone()
    }

    #[test]
    fn json_signing_matches_the_spec_vectors() {
        let key = spec_key();
        let mut empty = object(serde_json::json!({}));
        key.sign_json("domain", &mut empty).unwrap();
        assert_eq!(
            signature(&empty),
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        );
        let mut data = object(serde_json::json!({"one": 1, "two": "Two"}));
        key.sign_json("domain", &mut data).unwrap();
        assert_eq!(
            signature(&data),
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
        );
    }

    #[test]
    fn event_hashing_and_signing_match_the_spec_vectors() {
        let key = spec_key();
        // The vectors predate room version 3: they use the original redaction rules.
        let rules = ruma::RoomVersionId::V1.rules().unwrap();
        let mut minimal = object(serde_json::json!({
            "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain", "origin_server_ts": 1000000,
            "signatures": {}, "hashes": {}, "type": "X", "content": {}, "prev_events": [], "auth_events": [],
            "depth": 3, "unsigned": {"age_ts": 1000000},
        }));
        key.hash_and_sign_event("domain", &mut minimal, &rules).unwrap();
        let sha256 = |hash: &str| CanonicalJsonValue::Object(object(serde_json::json!({"sha256": hash})));
        assert_eq!(minimal["hashes"], sha256("5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"));
        assert_eq!(
            signature(&minimal),
            "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
        );

        let mut redactable = object(serde_json::json!({
            "content": {"body": "Here is the message content"}, "event_id": "$0:domain", "origin": "domain",
            "origin_server_ts": 1000000, "type": "m.room.message", "room_id": "!r:domain", "sender": "@u:domain",
            "signatures": {}, "unsigned": {"age_ts": 1000000},
        }));
        key.hash_and_sign_event("domain", &mut redactable, &rules).unwrap();
        assert_eq!(redactable["hashes"], sha256("onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"));
        assert_eq!(
            signature(&redactable),
            "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        );

        // The signature covers the redacted event: it still verifies once the message is
        // redacted (content emptied), and the content hash no longer matches, as the spec
        // expects of a redacted event.
        let redacted = ruma::canonical_json::redact(redactable.clone(), &rules.redaction, None).unwrap();
        assert_eq!(redacted["content"], CanonicalJsonValue::Object(CanonicalJsonObject::new()));
        let public = STANDARD_NO_PAD.encode(key.key_pair().public_key());
        let mut keys: PublicKeyMap = BTreeMap::new();
        keys.insert("domain".into(), BTreeMap::from([("ed25519:1".to_owned(), Base64::parse(&public).unwrap())]));
        let verified = ruma::signatures::verify_event(&keys, &redacted, &rules).unwrap();
        assert_eq!(verified, ruma::signatures::Verified::Signatures, "a redacted event verifies by signature only");
        let verified = ruma::signatures::verify_event(&keys, &redactable, &rules).unwrap();
        assert_eq!(verified, ruma::signatures::Verified::All);
    }

    #[test]
    fn rotation_keeps_the_old_key_as_expired() {
        let path = temp_path("rotate");
        let old_path = path.with_file_name("old_signing_keys");
        let first = SigningKey::load_or_generate(&path).unwrap();
        let (old_id, new_id) = rotate(&path, &old_path, 1_000).unwrap();
        assert_eq!(old_id, first.key_id());
        let second = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(second.key_id(), new_id);
        assert_ne!(second.public_key_base64(), first.public_key_base64());
        let old = load_old_keys(&old_path).unwrap();
        assert_eq!(
            old,
            [OldVerifyKey { key_id: first.key_id(), public_key: first.public_key_base64(), expired_ts: 1_000 }]
        );
        // A second rotation keeps both old keys.
        rotate(&path, &old_path, 2_000).unwrap();
        let old = load_old_keys(&old_path).unwrap();
        assert_eq!(old.iter().map(|k| k.expired_ts).collect::<Vec<_>>(), [1_000, 2_000]);
        std::fs::write(&old_path, "nonsense\n").unwrap();
        assert!(load_old_keys(&old_path).is_err());
    }

    #[test]
    fn a_generated_key_is_kept_and_reloaded() {
        let path = temp_path("reload");
        let first = SigningKey::load_or_generate(&path).unwrap();
        let second = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert_eq!(first.public_key_base64(), second.public_key_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(&std::fs::read_to_string(&path).unwrap()[12..]));
    }

    #[test]
    fn a_malformed_key_file_is_an_error_not_a_new_key() {
        let path = temp_path("malformed");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "ed25519 a_x not-base64!").unwrap();
        assert!(matches!(SigningKey::load_or_generate(&path), Err(SigningKeyError::Malformed { .. })));
    }

    #[test]
    fn signed_json_verifies_with_the_public_key() {
        let key = SigningKey::generate();
        let mut object = crate::to_canonical_object(serde_json::json!({"server_name": "example.org", "n": 1})).unwrap();
        key.sign_json("example.org", &mut object).unwrap();

        let mut keys = BTreeMap::new();
        keys.insert(key.key_id(), Base64::parse(key.public_key_base64()).unwrap());
        let mut map: PublicKeyMap = BTreeMap::new();
        map.insert("example.org".to_owned(), keys);
        ruma::signatures::verify_json(&map, &object).unwrap();

        // Tampering breaks the signature.
        object.insert("n".into(), CanonicalJsonValue::Integer(2u32.into()));
        assert!(ruma::signatures::verify_json(&map, &object).is_err());
    }
}
