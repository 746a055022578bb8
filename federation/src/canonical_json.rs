//! Canonical JSON as the spec defines it (Appendices § Canonical JSON): keys sorted, no
//! insignificant whitespace, integers only within ±(2^53 - 1), UTF-8. ruma's `CanonicalJsonValue`
//! enforces the value rules; this module is the one door the rest of Hearth uses.

use ruma::{CanonicalJsonObject, CanonicalJsonValue};

/// Why a JSON value cannot be made canonical.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalJsonError {
    #[error("value is not a JSON object")]
    NotAnObject,
    #[error("value cannot be canonical JSON: {0}")]
    Invalid(String),
}

/// Converts a `serde_json` object into a canonical JSON object, rejecting floats and integers
/// outside the range the spec allows.
pub fn to_canonical_object(value: serde_json::Value) -> Result<CanonicalJsonObject, CanonicalJsonError> {
    match CanonicalJsonValue::try_from(value) {
        Ok(CanonicalJsonValue::Object(object)) => Ok(object),
        Ok(_) => Err(CanonicalJsonError::NotAnObject),
        Err(error) => Err(CanonicalJsonError::Invalid(error.to_string())),
    }
}

/// Serialises a JSON value as canonical JSON bytes (sorted keys, compact form).
pub fn to_canonical_bytes(value: &serde_json::Value) -> Result<Vec<u8>, CanonicalJsonError> {
    let canonical =
        CanonicalJsonValue::try_from(value.clone()).map_err(|error| CanonicalJsonError::Invalid(error.to_string()))?;
    // `CanonicalJsonValue`'s Display writes the canonical form: objects are BTreeMaps, so keys are
    // sorted by code point, and nothing is pretty-printed.
    Ok(canonical.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let value = json!({"b": 1, "a": {"d": [1, 2], "c": "x"}, "\u{e9}": true});
        let bytes = to_canonical_bytes(&value).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), r#"{"a":{"c":"x","d":[1,2]},"b":1,"é":true}"#);
    }

    #[test]
    fn matches_the_spec_examples() {
        // Examples from the spec's Canonical JSON section.
        let cases = [
            (json!({}), "{}"),
            (json!({"one": 1, "two": "Two"}), r#"{"one":1,"two":"Two"}"#),
            (json!({"b": "2", "a": "1"}), r#"{"a":"1","b":"2"}"#),
            (json!({"a": "\u{65e5}\u{672c}\u{8a9e}"}), "{\"a\":\"\u{65e5}\u{672c}\u{8a9e}\"}"),
            (json!({"a": null}), r#"{"a":null}"#),
            (json!({"a": -0}), r#"{"a":0}"#),
        ];
        for (value, expected) in cases {
            assert_eq!(String::from_utf8(to_canonical_bytes(&value).unwrap()).unwrap(), expected);
        }
    }

    #[test]
    fn rejects_floats_and_out_of_range_integers() {
        assert!(to_canonical_bytes(&json!({"a": 1.5})).is_err());
        assert!(to_canonical_bytes(&json!({"a": 9_007_199_254_740_992_i64})).is_err());
        assert!(to_canonical_bytes(&json!({"a": 9_007_199_254_740_991_i64})).is_ok());
    }

    #[test]
    fn object_conversion_rejects_non_objects() {
        assert!(matches!(to_canonical_object(json!([1])), Err(CanonicalJsonError::NotAnObject)));
        assert!(to_canonical_object(json!({"k": "v"})).is_ok());
    }
}
