//! Secrets handed to clients (access and refresh tokens) and the hashes we store instead.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{Rng, RngCore, distributions::Uniform};
use sha2::{Digest, Sha256};

/// A new random token: a recognisable prefix and 256 bits from the OS generator.
pub fn generate_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: hex SHA-256. Tokens are looked up by this hash, so the database
/// never compares the secret itself and a leaked table logs nobody in.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A device id as Synapse makes them: ten uppercase letters.
pub fn generate_device_id() -> String {
    let letters = Uniform::new_inclusive(b'A', b'Z');
    rand::thread_rng().sample_iter(letters).take(10).map(char::from).collect()
}

/// A media id: 24 letters and digits from the OS's random source (unguessable, and within the
/// spec's `A-Za-z0-9_-`).
pub fn generate_media_id() -> String {
    rand::rngs::OsRng.sample_iter(&rand::distributions::Alphanumeric).take(24).map(char::from).collect()
}

/// A UIA session id.
pub fn generate_session_id() -> String {
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(24).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = generate_token("syt");
        let b = generate_token("syt");
        assert_ne!(a, b);
        assert!(a.starts_with("syt_") && a.len() > 40);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token("abc").len(), 64);
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn device_ids_are_ten_uppercase_letters() {
        let id = generate_device_id();
        assert_eq!(id.len(), 10);
        assert!(id.chars().all(|c| c.is_ascii_uppercase()));
    }
}
