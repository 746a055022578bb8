//! Accounts: registration, login, token refresh, logout, password change and deactivation
//! (spec: Client-Server API § Client Authentication, § Account registration and management).

use std::sync::Arc;

use serde_json::Value;

use super::{
    e2ee::device_lists::DeviceLists,
    login_backoff::LoginBackoff,
    passwords::Passwords,
    rate_limit::{RateClass, RateLimiters},
    tokens::{generate_device_id, generate_token, hash_token},
    uia::{self, Uia, UiaRequest},
    usernames::{user_id_for_login, user_id_for_new_username},
};
use crate::{
    config::{Config, RegistrationMode},
    error::{ApiError, ApiResult, ErrorKind},
    storage::{
        Db, now_ms,
        tokens::NewSession,
        users::{CreateUserError, NewUser},
    },
};

/// A logged-in device: what /login, /register and /refresh hand back.
#[derive(Debug)]
pub struct LoginSession {
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// Who is logging in.
pub enum LoginIdentity {
    /// A localpart or full user id.
    User(String),
    /// An email address bound to an account.
    Email(String),
}

pub struct LoginRequest {
    pub identity: LoginIdentity,
    pub password: String,
    pub device_id: Option<String>,
    pub initial_device_display_name: Option<String>,
    pub refresh_token: bool,
}

pub struct RegisterRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    pub email: Option<String>,
    pub device_id: Option<String>,
    pub initial_device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refresh_token: bool,
    pub auth: Option<Value>,
    /// Upgrading a guest: the guest's access token (spec: § Guest access).
    pub guest_access_token: Option<String>,
    /// The client's address: registrations are rate-limited per address.
    pub rate_limit_key: String,
}

pub struct Accounts {
    db: Db,
    passwords: Passwords,
    uia: Arc<Uia>,
    backoff: Arc<LoginBackoff>,
    rate_limits: Arc<RateLimiters>,
    /// Told when devices go (logout), so other users stop encrypting for them.
    device_lists: Arc<DeviceLists>,
    server_name: String,
    registration_mode: RegistrationMode,
    guests_allowed: bool,
    refreshable_lifetime_ms: u64,
}

const INVALID_LOGIN: &str = "Invalid username or password";

impl Accounts {
    pub fn new(
        config: &Config,
        db: Db,
        passwords: Passwords,
        uia: Arc<Uia>,
        backoff: Arc<LoginBackoff>,
        rate_limits: Arc<RateLimiters>,
        device_lists: Arc<DeviceLists>,
    ) -> Self {
        Self {
            db,
            passwords,
            uia,
            backoff,
            rate_limits,
            device_lists,
            server_name: config.server_name.clone(),
            registration_mode: config.registration.mode,
            guests_allowed: config.registration.guests,
            refreshable_lifetime_ms: config.auth.refreshable_access_token_lifetime_ms,
        }
    }

    fn registration_flows(&self) -> ApiResult<&'static [&'static [&'static str]]> {
        match self.registration_mode {
            RegistrationMode::Open => Ok(&[&[uia::DUMMY]]),
            // Synapse ends every registration flow with m.login.dummy, and clients (matrix-nio's
            // register_with_token) complete that last stage explicitly, so the flow matches.
            RegistrationMode::Token => Ok(&[&[uia::REGISTRATION_TOKEN, uia::DUMMY]]),
            RegistrationMode::Closed => Err(ApiError::forbidden("Registration has been disabled")),
        }
    }

    /// GET /register/available: Ok when the name is valid and free.
    pub async fn check_username_available(&self, username: &str) -> ApiResult<()> {
        let user_id = user_id_for_new_username(username, &self.server_name)?;
        if self.db.user_exists(&user_id).await? {
            return Err(ApiError::new(ErrorKind::UserInUse, "User ID already taken"));
        }
        Ok(())
    }

    /// GET /register/m.login.registration_token/validity.
    pub fn registration_token_is_valid(&self, token: &str) -> ApiResult<bool> {
        // Spec: 403 only when registration is not possible at all; otherwise an answer.
        match self.registration_mode {
            RegistrationMode::Closed => Err(ApiError::forbidden("Registration has been disabled")),
            RegistrationMode::Open => Ok(false),
            RegistrationMode::Token => Ok(self.uia.registration_token_is_valid(token)),
        }
    }

    /// POST /register. The username and password are checked before authentication, as
    /// Synapse does, so a client learns about a taken name before completing any stage.
    pub async fn register(&self, request: RegisterRequest) -> ApiResult<(String, Option<LoginSession>)> {
        let flows = self.registration_flows()?;
        // Upgrading a guest keeps its user id (spec: the username must be the guest's own
        // localpart, which is therefore not "taken").
        let guest = match &request.guest_access_token {
            Some(token) => {
                let record = self.db.lookup_access_token(&hash_token(token)).await?.filter(|r| r.is_guest);
                let guest = record.ok_or_else(|| ApiError::forbidden("Invalid guest access token"))?.user_id;
                if let Some(username) = &request.username
                    && user_id_for_new_username(username, &self.server_name)? != guest
                {
                    return Err(ApiError::invalid_param("username must be the guest account's own"));
                }
                Some(guest)
            }
            None => None,
        };
        // What can be checked without authentication is checked first, as Synapse does: a taken
        // name or weak password is reported before the client completes any stage. A request
        // with neither (Element's first probe) simply gets the flows.
        let requested_user_id = match &request.username {
            _ if guest.is_some() => guest.clone(),
            Some(username) => {
                let user_id = user_id_for_new_username(username, &self.server_name)?;
                if self.db.user_exists(&user_id).await? {
                    return Err(ApiError::new(ErrorKind::UserInUse, "User ID already taken"));
                }
                Some(user_id)
            }
            None => None,
        };
        if let Some(password) = &request.password {
            self.passwords.check_policy(password)?;
        }
        validate_device_input(request.device_id.as_deref(), request.initial_device_display_name.as_deref())?;
        let email = request.email.as_deref().map(normalise_email).transpose()?;
        if let Some(email) = &email
            && self.db.user_by_threepid("email", email).await?.is_some()
        {
            return Err(ApiError::new(ErrorKind::ThreepidInUse, "Email address already in use"));
        }

        self.uia
            .authenticate(request.auth.as_ref(), UiaRequest { flows, scope: "register".into(), user_id: None })
            .await?;

        let Some(password) = request.password.clone() else {
            return Err(ApiError::missing_param("'password' is required"));
        };
        let user_id = match requested_user_id {
            Some(user_id) => user_id,
            None => self.generate_free_user_id().await?,
        };
        // Only a registration that is about to create an account counts against the limit, so
        // multi-stage flows (probe, token, dummy) do not run into it half-way.
        self.rate_limits.check(RateClass::Register, &request.rate_limit_key)?;
        let password_hash = self.passwords.hash(password).await?;
        if guest.is_some() {
            if !self.db.upgrade_guest(&user_id, &password_hash).await? {
                return Err(ApiError::forbidden("This account is no longer a guest"));
            }
            tracing::info!(%user_id, "upgraded guest account");
            return self.finish_registration(user_id, request).await;
        }
        let localpart = user_id[1..].split(':').next().unwrap_or_default();
        let new_user = NewUser {
            user_id: &user_id,
            password_hash: Some(&password_hash),
            displayname: Some(localpart),
            email: email.as_deref(),
            is_guest: false,
        };
        match self.db.create_user(new_user).await {
            Ok(()) => {}
            Err(CreateUserError::UserInUse) => {
                return Err(ApiError::new(ErrorKind::UserInUse, "User ID already taken"));
            }
            Err(CreateUserError::ThreepidInUse) => {
                return Err(ApiError::new(ErrorKind::ThreepidInUse, "Email address already in use"));
            }
            Err(CreateUserError::Database(error)) => return Err(error.into()),
        }
        tracing::info!(%user_id, "registered user");
        self.finish_registration(user_id, request).await
    }

    /// Logs the new account in unless the client asked not to.
    async fn finish_registration(
        &self,
        user_id: String,
        request: RegisterRequest,
    ) -> ApiResult<(String, Option<LoginSession>)> {
        if request.inhibit_login {
            return Ok((user_id, None));
        }
        let session = self
            .start_session(
                &user_id,
                request.device_id,
                request.initial_device_display_name.as_deref(),
                request.refresh_token,
            )
            .await?;
        Ok((user_id, Some(session)))
    }

    /// POST /register?kind=guest: a guest account with a generated numeric id and no
    /// password, logged in at once (spec: § Guest access).
    pub async fn register_guest(
        &self,
        initial_device_display_name: Option<&str>,
        rate_limit_key: &str,
    ) -> ApiResult<LoginSession> {
        if !self.guests_allowed {
            return Err(ApiError::new(ErrorKind::GuestAccessForbidden, "Guest access is disabled"));
        }
        validate_device_input(None, initial_device_display_name)?;
        self.rate_limits.check(RateClass::Register, rate_limit_key)?;
        let user_id = self.generate_free_user_id().await?;
        let new_user =
            NewUser { user_id: &user_id, password_hash: None, displayname: None, email: None, is_guest: true };
        match self.db.create_user(new_user).await {
            Ok(()) => {}
            Err(CreateUserError::Database(error)) => return Err(error.into()),
            Err(_) => return Err(ApiError::new(ErrorKind::UserInUse, "User ID already taken")),
        }
        tracing::info!(%user_id, "registered guest");
        self.start_session(&user_id, None, initial_device_display_name, false).await
    }

    async fn generate_free_user_id(&self) -> ApiResult<String> {
        use rand::Rng;
        for _ in 0..10 {
            let number: u64 = rand::thread_rng().gen_range(100_000..10_000_000_000);
            let user_id = format!("@{number}:{}", self.server_name);
            if !self.db.user_exists(&user_id).await? {
                return Ok(user_id);
            }
        }
        Err(ApiError::internal("could not find a free generated user id"))
    }

    /// POST /login with m.login.password.
    pub async fn login(&self, request: LoginRequest) -> ApiResult<LoginSession> {
        let user_id = match &request.identity {
            LoginIdentity::User(user) => user_id_for_login(user, &self.server_name),
            LoginIdentity::Email(address) => match normalise_email(address) {
                Ok(address) => self.db.user_by_threepid("email", &address).await?,
                Err(_) => None,
            },
        };
        let Some(user_id) = user_id else {
            return Err(ApiError::forbidden(INVALID_LOGIN));
        };
        self.backoff.check(&user_id)?;
        let Some(user) = self.db.user(&user_id).await? else {
            // Spend the same time as a real check, so timing does not reveal which names exist.
            let _ = self.passwords.verify_decoy(request.password).await;
            self.backoff.record_failure(&user_id);
            return Err(ApiError::forbidden(INVALID_LOGIN));
        };
        if user.deactivated {
            return Err(ApiError::new(ErrorKind::UserDeactivated, "This account has been deactivated"));
        }
        let verified = match &user.password_hash {
            Some(hash) => self.passwords.verify(request.password.clone(), hash.clone()).await?,
            None => false,
        };
        if !verified {
            self.backoff.record_failure(&user_id);
            tracing::info!(%user_id, "failed login");
            return Err(ApiError::forbidden(INVALID_LOGIN));
        }
        self.backoff.record_success(&user_id);
        if let Some(hash) = user.password_hash.filter(|hash| self.passwords.needs_rehash(hash))
            && let Err(error) = self.rehash(&user_id, request.password, &hash).await
        {
            tracing::warn!(%user_id, ?error, "could not rehash the password with the configured parameters");
        }
        self.start_session(
            &user_id,
            request.device_id,
            request.initial_device_display_name.as_deref(),
            request.refresh_token,
        )
        .await
    }

    /// Stores the password hashed with the configured parameters (the login already proved
    /// it). Only replaces the hash the login checked, so a password change that lands
    /// meanwhile wins; on failure the old hash stays, and keeps working.
    async fn rehash(&self, user_id: &str, password: String, checked_hash: &str) -> ApiResult<()> {
        let new_hash = self.passwords.hash(password).await?;
        self.db.replace_password_hash(user_id, checked_hash, &new_hash).await?;
        Ok(())
    }

    async fn start_session(
        &self,
        user_id: &str,
        device_id: Option<String>,
        display_name: Option<&str>,
        with_refresh: bool,
    ) -> ApiResult<LoginSession> {
        validate_device_input(device_id.as_deref(), display_name)?;
        let device_id = device_id.unwrap_or_else(generate_device_id);
        let access_token = generate_token("hth");
        let refresh_token = with_refresh.then(|| generate_token("hthr"));
        let expires_in_ms = with_refresh.then_some(self.refreshable_lifetime_ms);
        let access_hash = hash_token(&access_token);
        let refresh_hash = refresh_token.as_deref().map(hash_token);
        self.db
            .create_session(NewSession {
                user_id,
                device_id: &device_id,
                initial_display_name: display_name,
                access_token_hash: &access_hash,
                expires_ts: expires_in_ms.map(|ms| now_ms() + ms as i64),
                refresh_token_hash: refresh_hash.as_deref(),
            })
            .await?;
        Ok(LoginSession { user_id: user_id.to_owned(), device_id, access_token, refresh_token, expires_in_ms })
    }

    /// POST /refresh: consumes the refresh token and issues a new access and refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> ApiResult<LoginSession> {
        let access_token = generate_token("hth");
        let new_refresh = generate_token("hthr");
        let expires_ts = now_ms() + self.refreshable_lifetime_ms as i64;
        let rotated = self
            .db
            .rotate_refresh_token(
                &hash_token(refresh_token),
                &hash_token(&access_token),
                expires_ts,
                &hash_token(&new_refresh),
            )
            .await?;
        let Some((user_id, device_id)) = rotated else {
            return Err(ApiError::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown refresh token"));
        };
        Ok(LoginSession {
            user_id,
            device_id,
            access_token,
            refresh_token: Some(new_refresh),
            expires_in_ms: Some(self.refreshable_lifetime_ms),
        })
    }

    /// POST /logout: the device and its tokens go.
    pub async fn logout(&self, user_id: &str, device_id: &str) -> ApiResult<()> {
        self.db.delete_devices(user_id, &[device_id.to_owned()]).await?;
        self.device_lists.changed_device(user_id, Some(device_id)).await
    }

    /// POST /logout/all.
    pub async fn logout_all(&self, user_id: &str) -> ApiResult<()> {
        self.db.delete_other_devices(user_id, None).await?;
        self.device_lists.changed(user_id).await
    }

    /// POST /account/password (UIA m.login.password). Other devices are logged out unless the
    /// client asks otherwise; the device making the request stays logged in.
    pub async fn change_password(
        &self,
        user_id: &str,
        device_id: &str,
        new_password: String,
        logout_devices: bool,
        auth: Option<&Value>,
    ) -> ApiResult<()> {
        self.passwords.check_policy(&new_password)?;
        let flows: &[&[&str]] = &[&[uia::PASSWORD]];
        self.uia
            .authenticate(auth, UiaRequest { flows, scope: format!("password:{user_id}"), user_id: Some(user_id) })
            .await?;
        let hash = self.passwords.hash(new_password).await?;
        self.db.set_password_hash(user_id, &hash).await?;
        if logout_devices {
            self.db.delete_other_devices(user_id, Some(device_id)).await?;
            self.device_lists.changed(user_id).await?;
        }
        tracing::info!(%user_id, "password changed");
        Ok(())
    }

    /// POST /account/deactivate (UIA m.login.password).
    pub async fn deactivate(&self, user_id: &str, erase: bool, auth: Option<&Value>) -> ApiResult<()> {
        let flows: &[&[&str]] = &[&[uia::PASSWORD]];
        self.uia
            .authenticate(auth, UiaRequest { flows, scope: format!("deactivate:{user_id}"), user_id: Some(user_id) })
            .await?;
        self.db.deactivate_user(user_id, erase).await?;
        tracing::info!(%user_id, erase, "account deactivated");
        Ok(())
    }
}

/// Checks a client-chosen device id and name before anything is stored.
fn validate_device_input(device_id: Option<&str>, display_name: Option<&str>) -> ApiResult<()> {
    if device_id.is_some_and(|id| id.is_empty() || id.len() > 255 || id.chars().any(char::is_control)) {
        return Err(ApiError::invalid_param("Invalid device_id"));
    }
    if display_name.is_some_and(|name| name.len() > 256 || name.chars().any(char::is_control)) {
        return Err(ApiError::invalid_param("Device name must be at most 256 bytes, without control characters"));
    }
    Ok(())
}

/// Lowercases and sanity-checks an email address (full validation is the mail server's job).
fn normalise_email(address: &str) -> ApiResult<String> {
    let address = address.trim().to_lowercase();
    let valid = address.len() <= 254
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(address) } else { Err(ApiError::invalid_param("Invalid email address")) }
}

#[cfg(test)]
mod tests {
    use super::normalise_email;

    #[test]
    fn emails_are_lowercased_and_sanity_checked() {
        assert_eq!(normalise_email(" Alice@Example.ORG ").unwrap(), "alice@example.org");
        for bad in
            ["", "alice", "@example.org", "alice@", "alice@example", "a b@example.org", "a@b@example.org", "a@.org"]
        {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }
}
