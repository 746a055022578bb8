//! The first checks on a PDU another server sent (spec: Server-Server API § Checks performed on
//! receipt of a PDU, steps 1–3): well formed and within size, signed by every server that must
//! sign it (keys fetched through `RemoteKeys`, valid when the event was sent), and its content
//! hash right — an event whose hash is wrong is redacted, not dropped. The authorization steps
//! follow in the event writer.

use hearth_federation::Pdu;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, ServerName,
    room_version_rules::RoomVersionRules,
    signatures::{PublicKeyMap, PublicKeySet, Verified, required_server_signatures_to_verify_event, verify_event},
};

use super::RemoteKeys;

/// The spec's limit on a PDU's size in canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// Checks `value` as a PDU of a room of `rules`; the parsed event (redacted if its hash was
/// wrong) or why it was refused.
pub async fn check_pdu(keys: &RemoteKeys, value: serde_json::Value, rules: &RoomVersionRules) -> Result<Pdu, String> {
    let mut object = hearth_federation::to_canonical_object(value).map_err(|e| e.to_string())?;
    let size = serde_json::to_vec(&object).map_err(|e| e.to_string())?.len();
    if size > MAX_PDU_BYTES {
        return Err(format!("the event is {size} bytes, more than {MAX_PDU_BYTES}"));
    }
    // Fields peers must not set are dropped before hashing (`unsigned` is not signed anyway).
    object.remove("unsigned");
    let origin_server_ts = match object.get("origin_server_ts") {
        Some(CanonicalJsonValue::Integer(ts)) => i64::from(*ts),
        _ => return Err("`origin_server_ts` must be an integer".into()),
    };
    let servers = required_server_signatures_to_verify_event(&object, &rules.signatures).map_err(|e| e.to_string())?;
    let mut map = PublicKeyMap::new();
    for server in servers {
        let key_ids = signature_key_ids(&object, &server);
        if key_ids.is_empty() {
            return Err(format!("the event is not signed by {server}"));
        }
        let mut set = PublicKeySet::new();
        for key_id in key_ids {
            match keys.public_key(&server, &key_id, origin_server_ts).await {
                Ok(key) => {
                    let key = ruma::serde::Base64::parse(&key).map_err(|e| e.to_string())?;
                    set.insert(key_id, key);
                }
                Err(error) => tracing::debug!(%error, "a signing key of an event is unknown"),
            }
        }
        if set.is_empty() {
            return Err(format!("no key of {server} that signed the event is known"));
        }
        map.insert(server.to_string(), set);
    }
    let verified = verify_event(&map, &object, rules).map_err(|e| format!("bad signature: {e}"))?;
    let event_id = hearth_federation::event_id_of(&object, rules).map_err(|e| e.to_string())?;
    if verified == Verified::Signatures {
        tracing::info!(%event_id, "an event's content hash is wrong: it is kept redacted");
        object = ruma::canonical_json::redact(object, &rules.redaction, None).map_err(|e| e.to_string())?;
    }
    Pdu::from_signed(event_id, object, rules).map_err(|e| e.to_string())
}

/// The key ids `server` signed `object` with.
fn signature_key_ids(object: &CanonicalJsonObject, server: &ServerName) -> Vec<String> {
    match object.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => match signatures.get(server.as_str()) {
            Some(CanonicalJsonValue::Object(by_key)) => by_key.keys().cloned().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
