//! Which endpoints a guest account may call (spec: Client-Server API § Guest access, "Client
//! behaviour"): reading and joining rooms, sending, its own devices and profile, and the
//! encryption keys endpoints. Like Synapse, guests may also use the small endpoints a client
//! needs to run at all (filters, push rules, typing, receipts, account data, presence, logout).
//! Everything else answers 403 M_GUEST_ACCESS_FORBIDDEN.

use axum::http::Method;

/// (method, route with `*` for each path parameter, after the API version prefix).
const ALLOWED: &[(&str, &str)] = &[
    // Reading rooms.
    ("GET", "/rooms/*/state"),
    ("GET", "/rooms/*/state/*"),
    ("GET", "/rooms/*/state/*/"),
    ("GET", "/rooms/*/state/*/*"),
    ("GET", "/rooms/*/context/*"),
    ("GET", "/rooms/*/event/*"),
    ("GET", "/rooms/*/messages"),
    ("GET", "/rooms/*/members"),
    ("GET", "/rooms/*/joined_members"),
    ("GET", "/rooms/*/relations/*"),
    ("GET", "/rooms/*/relations/*/*"),
    ("GET", "/rooms/*/relations/*/*/*"),
    ("GET", "/rooms/*/threads"),
    ("GET", "/sync"),
    ("GET", "/joined_rooms"),
    ("GET", "/publicRooms"),
    ("GET", "/directory/room/*"),
    // Taking part.
    ("POST", "/rooms/*/join"),
    ("POST", "/join/*"),
    ("POST", "/rooms/*/leave"),
    ("PUT", "/rooms/*/send/*/*"),
    ("PUT", "/rooms/*/state/*"),
    ("PUT", "/rooms/*/state/*/"),
    ("PUT", "/rooms/*/state/*/*"),
    ("PUT", "/sendToDevice/*/*"),
    ("PUT", "/rooms/*/typing/*"),
    ("POST", "/rooms/*/receipt/*/*"),
    ("POST", "/rooms/*/read_markers"),
    // Their own account.
    ("PUT", "/profile/*/*"),
    ("GET", "/profile/*"),
    ("GET", "/profile/*/*"),
    ("GET", "/devices"),
    ("GET", "/devices/*"),
    ("PUT", "/devices/*"),
    ("GET", "/account/whoami"),
    ("POST", "/logout"),
    ("POST", "/user/*/filter"),
    ("GET", "/user/*/filter/*"),
    ("GET", "/user/*/account_data/*"),
    ("PUT", "/user/*/account_data/*"),
    ("GET", "/user/*/rooms/*/account_data/*"),
    ("PUT", "/user/*/rooms/*/account_data/*"),
    ("GET", "/pushrules/"),
    ("GET", "/capabilities"),
    ("GET", "/presence/*/status"),
    ("PUT", "/presence/*/status"),
    // End-to-end encryption.
    ("POST", "/keys/upload"),
    ("POST", "/keys/query"),
    ("POST", "/keys/claim"),
    ("GET", "/keys/changes"),
    // Media (authenticated downloads).
    ("GET", "/media/download/*/*"),
    ("GET", "/media/download/*/*/*"),
    ("GET", "/media/thumbnail/*/*"),
];

const PREFIXES: &[&str] = &["/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/client/v1"];

/// Whether a guest may call the route axum matched (its pattern, e.g.
/// `/_matrix/client/v3/rooms/{room_id}/messages`).
pub fn guest_may_use(method: &Method, route: &str) -> bool {
    let Some(rest) = PREFIXES.iter().find_map(|prefix| route.strip_prefix(prefix)) else { return false };
    let shape: String = rest
        .split('/')
        .map(|segment| if segment.starts_with('{') && segment.ends_with('}') { "*" } else { segment })
        .collect::<Vec<_>>()
        .join("/");
    ALLOWED.iter().any(|(allowed_method, allowed_shape)| method.as_str() == *allowed_method && shape == *allowed_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_read_and_talk_but_do_not_create_rooms() {
        assert!(guest_may_use(&Method::GET, "/_matrix/client/v3/rooms/{room_id}/messages"));
        assert!(guest_may_use(&Method::PUT, "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}"));
        assert!(guest_may_use(&Method::POST, "/_matrix/client/r0/join/{room_id_or_alias}"));
        assert!(!guest_may_use(&Method::POST, "/_matrix/client/v3/createRoom"));
        assert!(!guest_may_use(&Method::POST, "/_matrix/client/v3/rooms/{room_id}/invite"));
        assert!(!guest_may_use(&Method::DELETE, "/_matrix/client/v3/devices/{device_id}"));
        assert!(!guest_may_use(&Method::GET, "/somewhere/else"));
    }
}
