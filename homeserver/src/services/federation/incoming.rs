//! The first checks on a PDU another server sent (spec: Server-Server API § Checks performed on
//! receipt of a PDU, steps 1–3): well formed and within size, signed by every server that must
//! sign it (keys fetched through `RemoteKeys`, valid when the event was sent), and its content
//! hash right — an event whose hash is wrong is redacted, not dropped. The authorization steps
//! follow in the event writer.

use hearth_federation::Pdu;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, ServerName,
    room_version_rules::RoomVersionRules,
    signatures::{PublicKeyMap, PublicKeySet, Verified, required_server_signatures_to_verify_event, verify_event},
};

use super::RemoteKeys;

/// The spec's limit on a PDU's size in canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// Checks `value` as a PDU of a room of `rules`; the parsed event (redacted if its hash was
/// wrong) or why it was refused.
pub async fn check_pdu(keys: &RemoteKeys, value: serde_json::Value, rules: &RoomVersionRules) -> Result<Pdu, String> {
    check_pdu_naming(keys, value, rules).await.map_err(|(_, reason)| reason)
}

/// `check_pdu`, naming a refused event by its id where it has one (so a /send answer can say
/// which event was refused and why).
pub async fn check_pdu_naming(
    keys: &RemoteKeys,
    value: serde_json::Value,
    rules: &RoomVersionRules,
) -> Result<Pdu, (Option<OwnedEventId>, String)> {
    let mut object = hearth_federation::to_canonical_object(value).map_err(|e| (None, e.to_string()))?;
    // Fields peers must not set are dropped before hashing (`unsigned` is not signed anyway).
    object.remove("unsigned");
    checked(keys, object, rules).await
}

async fn checked(
    keys: &RemoteKeys,
    mut object: CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<Pdu, (Option<OwnedEventId>, String)> {
    let named =
        |object: &CanonicalJsonObject, reason: String| (hearth_federation::event_id_of(object, rules).ok(), reason);
    let size = serde_json::to_vec(&object).map_err(|e| (None, e.to_string()))?.len();
    if size > MAX_PDU_BYTES {
        return Err(named(&object, format!("the event is {size} bytes, more than {MAX_PDU_BYTES}")));
    }
    let origin_server_ts = match object.get("origin_server_ts") {
        Some(CanonicalJsonValue::Integer(ts)) => i64::from(*ts),
        _ => return Err(named(&object, "`origin_server_ts` must be an integer".into())),
    };
    let servers = required_server_signatures_to_verify_event(&object, &rules.signatures)
        .map_err(|e| named(&object, e.to_string()))?;
    let mut map = PublicKeyMap::new();
    for server in servers {
        let key_ids = signature_key_ids(&object, &server);
        if key_ids.is_empty() {
            return Err(named(&object, format!("the event is not signed by {server}")));
        }
        let mut set = PublicKeySet::new();
        for key_id in key_ids {
            match keys.public_key(&server, &key_id, origin_server_ts).await {
                Ok(key) => {
                    let key = ruma::serde::Base64::parse(&key).map_err(|e| named(&object, e.to_string()))?;
                    set.insert(key_id, key);
                }
                Err(error) => tracing::debug!(%error, "a signing key of an event is unknown"),
            }
        }
        if set.is_empty() {
            return Err(named(&object, format!("no key of {server} that signed the event is known")));
        }
        map.insert(server.to_string(), set);
    }
    let verified = verify_event(&map, &object, rules).map_err(|e| named(&object, format!("bad signature: {e}")))?;
    let event_id = hearth_federation::event_id_of(&object, rules).map_err(|e| (None, e.to_string()))?;
    if verified == Verified::Signatures {
        tracing::info!(%event_id, "an event's content hash is wrong: it is kept redacted");
        object = ruma::canonical_json::redact(object, &rules.redaction, None)
            .map_err(|e| (Some(event_id.clone()), e.to_string()))?;
    }
    Pdu::from_signed(event_id.clone(), object, rules).map_err(|e| (Some(event_id), e.to_string()))
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
