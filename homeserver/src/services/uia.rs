//! User-interactive authentication (spec: Client-Server API § User-Interactive Authentication
//! API). A session remembers which stages a client completed for one operation; an operation
//! proceeds once every stage of one of its flows is done.
//!
//! Sessions live in memory for 15 minutes: a restart only makes a client start the flow again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::{
    login_backoff::LoginBackoff, passwords::Passwords, tokens::generate_session_id, usernames::user_id_for_login,
};
use crate::{
    config::Secret,
    error::{ApiError, ApiResult, ErrorKind},
    storage::Db,
};

pub const DUMMY: &str = "m.login.dummy";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";
pub const PASSWORD: &str = "m.login.password";

const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

struct Session {
    scope: String,
    completed: Vec<&'static str>,
    created: Instant,
}

/// What the caller wants authorised: its flows, and a scope that ties a session to one
/// operation by one user (a session started to delete a device cannot change a password).
pub struct UiaRequest<'a> {
    pub flows: &'a [&'a [&'static str]],
    pub scope: String,
    /// The user whose password the m.login.password stage checks.
    pub user_id: Option<&'a str>,
}

pub struct Uia {
    db: Db,
    passwords: Passwords,
    /// Failed password stages count like failed logins, so a stolen access token cannot be
    /// used to guess the account's password through device deletion or password change.
    backoff: Arc<LoginBackoff>,
    server_name: String,
    registration_tokens: Vec<Secret>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Uia {
    pub fn new(
        db: Db,
        passwords: Passwords,
        backoff: Arc<LoginBackoff>,
        server_name: String,
        registration_tokens: Vec<Secret>,
    ) -> Self {
        Self { db, passwords, backoff, server_name, registration_tokens, sessions: Mutex::new(HashMap::new()) }
    }

    /// Ok when `auth` completes a flow; otherwise the 401 that tells the client what is left.
    pub async fn authenticate(&self, auth: Option<&Value>, request: UiaRequest<'_>) -> ApiResult<()> {
        let auth = match auth {
            None | Some(Value::Null) => None,
            Some(Value::Object(object)) => Some(object),
            Some(_) => return Err(ApiError::bad_json("'auth' must be an object")),
        };
        let session_id = match auth.and_then(|a| a.get("session")) {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(ApiError::bad_json("'auth.session' must be a string")),
        };
        let session_id = match session_id {
            Some(id) => {
                self.check_session(&id, &request.scope)?;
                id
            }
            None => self.new_session(&request.scope),
        };
        let Some(auth) = auth else {
            return Err(self.challenge(&session_id, &request, None));
        };
        let stage = match auth.get("type") {
            // No type: the client asks whether an out-of-band stage completed.
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => return Err(ApiError::bad_json("'auth.type' must be a string")),
        };
        if let Some(stage) = stage {
            let allowed = request.flows.iter().flat_map(|flow| flow.iter()).find(|s| **s == stage).copied();
            let Some(stage) = allowed else {
                let failure = ("M_UNRECOGNIZED", format!("Authentication type {stage} is not offered here"));
                return Err(self.challenge(&session_id, &request, Some(failure)));
            };
            if let Err(failure) = self.verify_stage(stage, auth, &request).await? {
                return Err(self.challenge(&session_id, &request, Some(("M_FORBIDDEN", failure))));
            }
            self.mark_completed(&session_id, stage);
        }
        if self.flow_completed(&session_id, request.flows) {
            self.sessions.lock().expect("uia lock").remove(&session_id);
            Ok(())
        } else {
            Err(self.challenge(&session_id, &request, None))
        }
    }

    fn new_session(&self, scope: &str) -> String {
        let id = generate_session_id();
        let mut sessions = self.sessions.lock().expect("uia lock");
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.created) < SESSION_LIFETIME);
        sessions.insert(id.clone(), Session { scope: scope.to_owned(), completed: Vec::new(), created: now });
        id
    }

    fn check_session(&self, id: &str, scope: &str) -> ApiResult<()> {
        let sessions = self.sessions.lock().expect("uia lock");
        match sessions.get(id) {
            Some(session) if session.created.elapsed() < SESSION_LIFETIME => {
                if session.scope == scope {
                    Ok(())
                } else {
                    Err(ApiError::forbidden("This authentication session was started for a different request"))
                }
            }
            _ => Err(ApiError::unknown("Unknown or expired authentication session")),
        }
    }

    fn mark_completed(&self, id: &str, stage: &'static str) {
        if let Some(session) = self.sessions.lock().expect("uia lock").get_mut(id)
            && !session.completed.contains(&stage)
        {
            session.completed.push(stage);
        }
    }

    fn flow_completed(&self, id: &str, flows: &[&[&'static str]]) -> bool {
        let sessions = self.sessions.lock().expect("uia lock");
        let Some(session) = sessions.get(id) else { return false };
        flows.iter().any(|flow| flow.iter().all(|stage| session.completed.contains(stage)))
    }

    /// Ok(Err(reason)) when the stage was attempted and failed.
    async fn verify_stage(
        &self,
        stage: &str,
        auth: &Map<String, Value>,
        request: &UiaRequest<'_>,
    ) -> ApiResult<Result<(), String>> {
        match stage {
            DUMMY => Ok(Ok(())),
            REGISTRATION_TOKEN => {
                let Some(token) = auth.get("token").and_then(Value::as_str) else {
                    return Err(ApiError::missing_param("'auth.token' is required"));
                };
                Ok(if self.registration_token_is_valid(token) {
                    Ok(())
                } else {
                    Err("Invalid registration token".into())
                })
            }
            PASSWORD => self.verify_password_stage(auth, request).await,
            other => Err(ApiError::internal(format_args!("UIA stage {other} has no verifier"))),
        }
    }

    /// Compares against every configured token in constant time.
    pub fn registration_token_is_valid(&self, token: &str) -> bool {
        self.registration_tokens
            .iter()
            .fold(false, |found, candidate| found | bool::from(candidate.expose().as_bytes().ct_eq(token.as_bytes())))
    }

    async fn verify_password_stage(
        &self,
        auth: &Map<String, Value>,
        request: &UiaRequest<'_>,
    ) -> ApiResult<Result<(), String>> {
        let Some(expected_user) = request.user_id else {
            return Err(ApiError::internal("password stage offered without a user"));
        };
        let Some(password) = auth.get("password").and_then(Value::as_str) else {
            return Err(ApiError::missing_param("'auth.password' is required"));
        };
        let named = auth
            .get("identifier")
            .and_then(|identifier| identifier.get("user"))
            .or_else(|| auth.get("user"))
            .and_then(Value::as_str);
        if let Some(named) = named
            && user_id_for_login(named, &self.server_name).as_deref() != Some(expected_user)
        {
            return Ok(Err("Authenticated user does not match the requester".into()));
        }
        self.backoff.check(expected_user)?;
        let Some(hash) = self.db.user(expected_user).await?.and_then(|user| user.password_hash) else {
            return Ok(Err("Invalid password".into()));
        };
        if self.passwords.verify(password.to_owned(), hash).await? {
            self.backoff.record_success(expected_user);
            Ok(Ok(()))
        } else {
            self.backoff.record_failure(expected_user);
            Ok(Err("Invalid password".into()))
        }
    }

    fn challenge(
        &self,
        session_id: &str,
        request: &UiaRequest<'_>,
        failure: Option<(&'static str, String)>,
    ) -> ApiError {
        let completed =
            self.sessions.lock().expect("uia lock").get(session_id).map(|s| s.completed.clone()).unwrap_or_default();
        let flows: Vec<Value> = request.flows.iter().map(|stages| json!({"stages": stages})).collect();
        let mut body = Map::new();
        body.insert("flows".into(), Value::Array(flows));
        body.insert("params".into(), json!({}));
        body.insert("session".into(), session_id.into());
        body.insert("completed".into(), json!(completed));
        let (errcode, message) = match failure {
            Some((errcode, message)) => (Some(errcode), message),
            None => (None, "Additional authentication is required".to_owned()),
        };
        ApiError::new(ErrorKind::UserInteractiveAuth { body, errcode }, message)
    }
}
