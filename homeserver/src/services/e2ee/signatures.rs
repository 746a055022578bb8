//! Checking an ed25519 signature on a signed JSON object (spec: Appendices § Signing JSON): the
//! object without `signatures` and `unsigned`, as canonical JSON. ruma does the verification;
//! only picking the one signature to check is done here.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use serde_json::Value;

/// Whether `object` carries a valid signature by `signer`'s key `key_id` (`ed25519:<id>`),
/// whose public key is `public_key` (unpadded base64).
pub fn verify(object: &Value, signer: &str, key_id: &str, public_key: &str) -> bool {
    let Some(signature) = object.pointer(&format!("/signatures/{}/{}", escape(signer), escape(key_id))) else {
        return false;
    };
    let Some(signature) = signature.as_str().and_then(decode) else { return false };
    let Some(public_key) = decode(public_key) else { return false };
    let mut unsigned = object.clone();
    if let Some(map) = unsigned.as_object_mut() {
        map.remove("signatures");
        map.remove("unsigned");
    }
    let Ok(canonical) = hearth_federation::to_canonical_bytes(&unsigned) else { return false };
    key_id.starts_with("ed25519:")
        && ruma::signatures::verify_canonical_json_bytes(
            &ruma::signatures::SigningKeyAlgorithm::Ed25519,
            &public_key,
            &signature,
            &canonical,
        )
        .is_ok()
}

/// Base64 as clients write it: unpadded, though some pad.
fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// A JSON pointer segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The single ed25519 public key of a cross-signing key object, as (key id, public key).
pub fn cross_signing_public_key(key: &Value) -> Option<(String, String)> {
    let keys = key.get("keys")?.as_object()?;
    if keys.len() != 1 {
        return None;
    }
    let (id, public) = keys.iter().next()?;
    Some((id.clone(), public.as_str()?.to_owned())).filter(|(id, _)| id.starts_with("ed25519:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verifies_what_a_key_signed_and_nothing_else() {
        let key = hearth_federation::SigningKey::generate();
        let mut object =
            hearth_federation::to_canonical_object(json!({"user_id": "@a:hs", "keys": {"x": "y"}})).unwrap();
        key.sign_json("@a:hs", &mut object).unwrap();
        let signed = serde_json::to_value(&object).unwrap();
        let public = key.public_key_base64();
        assert!(verify(&signed, "@a:hs", &key.key_id(), &public));
        let mut tampered = signed.clone();
        tampered["keys"]["x"] = json!("z");
        assert!(!verify(&tampered, "@a:hs", &key.key_id(), &public));
        assert!(!verify(&signed, "@b:hs", &key.key_id(), &public), "signed by someone else");
        let mut with_unsigned = signed.clone();
        with_unsigned["unsigned"] = json!({"device_display_name": "phone"});
        assert!(verify(&with_unsigned, "@a:hs", &key.key_id(), &public), "unsigned is not signed");
    }
}
