//! Localparts of user ids chosen at registration (spec: Appendices § User Identifiers).

use crate::error::{ApiError, ApiResult, ErrorKind};

/// The longest user id the spec allows, in bytes, including `@` and `:server`.
const MAX_USER_ID_BYTES: usize = 255;

/// Validates a requested username and returns the full user id. Usernames are lowercased first,
/// as Synapse does, so `Alice` registers `@alice:server`.
pub fn user_id_for_new_username(username: &str, server_name: &str) -> ApiResult<String> {
    let localpart = username.to_lowercase();
    let invalid = |why: &str| Err(ApiError::new(ErrorKind::InvalidUsername, why));
    if localpart.is_empty() {
        return invalid("Username must not be empty");
    }
    if !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')) {
        return invalid("Username may only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'");
    }
    let user_id = format!("@{localpart}:{server_name}");
    if user_id.len() > MAX_USER_ID_BYTES {
        return invalid("Username is too long");
    }
    Ok(user_id)
}

/// The server name of a user id: everything after the first `:` (a localpart never holds one,
/// while a server name may: `@alice:example.org:8448`, `@bob:[::1]:8448`).
pub fn server_of(user_id: &str) -> &str {
    user_id.split_once(':').map_or("", |(_, server)| server)
}

/// Resolves what a client typed at login (a localpart or a full user id) to a local user id;
/// None when it names another server or cannot be a user id at all.
pub fn user_id_for_login(user: &str, server_name: &str) -> Option<String> {
    let user = user.trim();
    if user.chars().any(char::is_control) {
        return None;
    }
    if let Some(rest) = user.strip_prefix('@') {
        let (localpart, server) = rest.split_once(':')?;
        (server == server_name && !localpart.is_empty()).then(|| format!("@{}:{server_name}", localpart.to_lowercase()))
    } else if user.is_empty() || user.contains(':') {
        None
    } else {
        Some(format!("@{}:{server_name}", user.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_keep_their_ports() {
        assert_eq!(server_of("@alice:example.org:8448"), "example.org:8448");
        assert_eq!(server_of("@bob:[::1]:8448"), "[::1]:8448");
        assert_eq!(server_of("@carol:localhost"), "localhost");
        assert_eq!(server_of("nonsense"), "");
    }

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(user_id_for_new_username("Alice", "hs").unwrap(), "@alice:hs");
        assert_eq!(user_id_for_new_username("a.b_c=d-e/f+g", "hs").unwrap(), "@a.b_c=d-e/f+g:hs");
        for bad in
            ["", "al ice", "@alice:hs", "ålice", "alice\u{0}", "bob\n", "x'; DROP TABLE users;--", &"a".repeat(300)]
        {
            let error = user_id_for_new_username(bad, "hs").unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidUsername, "{bad:?}");
        }
    }

    #[test]
    fn login_names_resolve_to_local_users_only() {
        assert_eq!(user_id_for_login("Alice", "hs").as_deref(), Some("@alice:hs"));
        assert_eq!(user_id_for_login("@alice:hs", "hs").as_deref(), Some("@alice:hs"));
        assert_eq!(user_id_for_login("@alice:elsewhere", "hs"), None);
        assert_eq!(user_id_for_login("", "hs"), None);
    }
}
