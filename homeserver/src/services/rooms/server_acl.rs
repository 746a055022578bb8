//! Server ACLs (spec: Client-Server API § Server Access Control Lists): a room's
//! m.room.server_acl names the servers allowed and denied to take part. A denied server's
//! events, EDUs and requests about the room are refused.

use serde_json::Value;

use super::Rooms;
use crate::error::{ApiError, ApiResult};

/// Whether `pattern` (with `*` for any run of characters and `?` for one) matches `name`.
/// Written by hand: the spec's glob has just these two wildcards, matched case-insensitively.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.to_lowercase().chars().collect(), name.to_lowercase().chars().collect());
    let (mut p, mut n, mut star, mut resume) = (0, 0, None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            resume = n;
            p += 1;
        } else if let Some(at) = star {
            p = at + 1;
            resume += 1;
            n = resume;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Whether an ACL's content lets `server` (a server name, port ignored) take part.
pub fn allows(acl: &Value, server: &str) -> bool {
    let host = match server.rsplit_once(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some((host, port)) if !host.ends_with(']') || server.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) { host } else { server }
        }
        _ => server,
    };
    let is_ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok();
    if is_ip && !acl["allow_ip_literals"].as_bool().unwrap_or(true) {
        return false;
    }
    let listed = |field: &str| {
        acl[field].as_array().into_iter().flatten().filter_map(Value::as_str).any(|p| glob_matches(p, host))
    };
    !listed("deny") && listed("allow")
}

impl Rooms {
    /// Refuses `server` when the room's ACL does not let it take part.
    pub async fn check_server_acl(&self, room_id: &str, server: &str) -> ApiResult<()> {
        let Some(event) = self.db.current_state_event(room_id, "m.room.server_acl", "").await? else {
            return Ok(());
        };
        let content = serde_json::from_str::<Value>(&event.json).unwrap_or_default()["content"].clone();
        if allows(&content, server) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("The room's server ACL does not allow {server}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn globs_match_as_the_spec_describes() {
        assert!(glob_matches("*", "anything.example"));
        assert!(glob_matches("*.example.org", "matrix.example.org"));
        assert!(!glob_matches("*.example.org", "example.org"));
        assert!(glob_matches("matrix?.example", "matrix1.example"));
        assert!(!glob_matches("matrix?.example", "matrix12.example"));
        assert!(glob_matches("EVIL.example", "evil.example"));
    }

    #[test]
    fn deny_wins_ports_are_ignored_and_ip_literals_can_be_refused() {
        let acl = json!({"allow": ["*"], "deny": ["evil.example", "*.bad.example"], "allow_ip_literals": false});
        assert!(allows(&acl, "good.example"));
        assert!(allows(&acl, "good.example:8448"));
        assert!(!allows(&acl, "evil.example:8448"));
        assert!(!allows(&acl, "x.bad.example"));
        assert!(!allows(&acl, "127.0.0.1:8448"));
        assert!(!allows(&acl, "[::1]:8448"));
        assert!(!allows(&json!({"deny": []}), "good.example"), "nothing allowed when allow is absent");
        assert!(allows(&json!({"allow": ["127.0.0.1"]}), "127.0.0.1:8448"));
    }
}
