//! Key queries and claims for users on other servers: one request per server, all servers at
//! once, each bounded by the client's timeout. A server that fails is named in `failures`; what
//! it answers about users of any other server is ignored.

use std::{collections::BTreeMap, time::Duration};

use futures_util::future::join_all;
use reqwest::Method;
use ruma::ServerName;
use serde_json::{Map, Value, json};

use crate::services::{federation::FederationClient, usernames::server_of};

/// The keys found by a query, by kind and user.
#[derive(Default)]
pub struct KeySet {
    pub device_keys: Map<String, Value>,
    pub master_keys: Map<String, Value>,
    pub self_signing_keys: Map<String, Value>,
    pub user_signing_keys: Map<String, Value>,
}

impl KeySet {
    pub fn into_json(self) -> Value {
        json!({
            "device_keys": self.device_keys,
            "master_keys": self.master_keys,
            "self_signing_keys": self.self_signing_keys,
            "user_signing_keys": self.user_signing_keys,
        })
    }
}

/// Asks each server in `wanted` (server -> {user: [device ids]}) for its users' keys.
pub async fn query(
    federation: &FederationClient,
    wanted: BTreeMap<&str, Map<String, Value>>,
    timeout: Duration,
    found: &mut KeySet,
) -> Map<String, Value> {
    let answers = ask_each(federation, wanted, timeout, "/_matrix/federation/v1/user/keys/query", "device_keys").await;
    let mut failures = Map::new();
    for (server, answer) in answers {
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                failures.insert(server, failure);
                continue;
            }
        };
        for (field, into) in [
            ("device_keys", &mut found.device_keys),
            ("master_keys", &mut found.master_keys),
            ("self_signing_keys", &mut found.self_signing_keys),
        ] {
            for (user_id, keys) in answer[field].as_object().into_iter().flatten() {
                if server_of(user_id) == server {
                    into.insert(user_id.clone(), keys.clone());
                }
            }
        }
    }
    failures
}

/// Claims one-time keys from each server in `wanted` (server -> {user: {device: algorithm}}).
pub async fn claim(
    federation: &FederationClient,
    wanted: BTreeMap<&str, Map<String, Value>>,
    timeout: Duration,
    claimed: &mut Map<String, Value>,
) -> Map<String, Value> {
    let answers =
        ask_each(federation, wanted, timeout, "/_matrix/federation/v1/user/keys/claim", "one_time_keys").await;
    let mut failures = Map::new();
    for (server, answer) in answers {
        match answer {
            Ok(answer) => {
                for (user_id, keys) in answer["one_time_keys"].as_object().into_iter().flatten() {
                    if server_of(user_id) == server {
                        claimed.insert(user_id.clone(), keys.clone());
                    }
                }
            }
            Err(failure) => {
                failures.insert(server, failure);
            }
        }
    }
    failures
}

/// POSTs `{field: users}` to `path` on every server at once; each server's answer or failure.
async fn ask_each(
    federation: &FederationClient,
    wanted: BTreeMap<&str, Map<String, Value>>,
    timeout: Duration,
    path: &str,
    field: &str,
) -> Vec<(String, Result<Value, Value>)> {
    let requests = wanted.into_iter().map(|(server, users)| async move {
        let name = server.to_owned();
        let Ok(destination) = ServerName::parse(server) else {
            return (name, Err(json!({"status": 400, "message": "Invalid server name"})));
        };
        let body = json!({ field: users });
        let sent = federation.send_json(&destination, Method::POST, path, &body);
        let answer = match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(json!({"status": 503, "message": error.to_string()})),
            Err(_) => Err(json!({"status": 504, "message": "The server did not answer in time"})),
        };
        (name, answer)
    });
    join_all(requests).await
}
