//! Password hashing with argon2id on a blocking thread, and the configured password policy.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng},
};

use crate::{
    config::{AuthConfig, PasswordPolicy},
    error::{ApiError, ApiResult, ErrorKind},
};

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    policy: PasswordPolicy,
    workers: HashWorkers,
    /// A hash of a random password with the configured parameters, made on first use: logins
    /// for users that do not exist verify against it, so they take as long as real ones.
    decoy: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads for argon2 (one per core). Each hash needs its memory cost (7 MiB
/// by default) of working memory; on tokio's elastic blocking pool every new thread would keep
/// its own malloc arena with that much in it, so a burst of logins left the server at ten
/// times its idle memory. A fixed pool bounds the arenas to the number of cores and queues
/// the excess.
#[derive(Clone)]
struct HashWorkers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashWorkers {
    fn new() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        // Unbounded: the queue holds only requests that passed the login/register rate limits.
        let (jobs, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every sender dropped: the server is gone
                        }
                    }
                })
                .expect("spawn an argon2 worker thread");
        }
        Self { jobs }
    }

    /// Runs `work` on the pool and awaits its result.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.send(job).map_err(ApiError::internal)?;
        result.await.map_err(ApiError::internal)
    }
}

impl Passwords {
    pub fn new(auth: &AuthConfig, policy: PasswordPolicy) -> anyhow::Result<Self> {
        let params = Params::new(auth.argon2_memory_kib, auth.argon2_iterations, auth.argon2_parallelism, None)
            .map_err(|e| anyhow::anyhow!("auth.argon2_*: {e}"))?;
        Ok(Self { params, policy, workers: HashWorkers::new(), decoy: Default::default() })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password (PHC string) on the hashing pool, off the async runtime.
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        let argon2 = self.argon2();
        self.workers
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                argon2.hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
            })
            .await?
            .map_err(|e| ApiError::internal(format_args!("argon2: {e}")))
    }

    /// Verifies a password against a stored PHC hash off the async runtime. The comparison
    /// inside argon2 is constant-time.
    pub async fn verify(&self, password: String, stored_hash: String) -> ApiResult<bool> {
        let argon2 = self.argon2();
        self.workers
            .run(move || match PasswordHash::new(&stored_hash) {
                Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            })
            .await
    }

    /// Whether a stored hash was made with other parameters than the configured ones (an
    /// older default, or a changed configuration): a successful login then rehashes it.
    pub fn needs_rehash(&self, stored_hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored_hash) else { return false };
        parsed.algorithm != Algorithm::Argon2id.ident()
            || parsed.version != Some(Version::V0x13.into())
            || Params::try_from(&parsed).is_ok_and(|params| {
                (params.m_cost(), params.t_cost(), params.p_cost())
                    != (self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
            })
    }

    /// Spends the time of a real verification, for a login whose user does not exist, so
    /// timing does not reveal which names exist.
    pub async fn verify_decoy(&self, password: String) -> ApiResult<()> {
        let decoy = self.decoy.get_or_try_init(|| self.hash(crate::services::tokens::generate_token("decoy"))).await?;
        self.verify(password, decoy.clone()).await.map(drop)
    }

    /// Checks a new password against the configured policy (M_WEAK_PASSWORD otherwise).
    pub fn check_policy(&self, password: &str) -> ApiResult<()> {
        let policy = &self.policy;
        let weak = |why: &str| Err(ApiError::new(ErrorKind::WeakPassword, why));
        if password.chars().count() < policy.min_length {
            return weak(&format!("Password must be at least {} characters long", policy.min_length));
        }
        if password.len() > 512 {
            return Err(ApiError::invalid_param("Password is too long (at most 512 bytes)"));
        }
        if policy.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            return weak("Password must contain a digit");
        }
        if policy.require_symbol && !password.chars().any(|c| !c.is_alphanumeric()) {
            return weak("Password must contain a symbol");
        }
        if policy.require_lowercase && !password.chars().any(char::is_lowercase) {
            return weak("Password must contain a lowercase letter");
        }
        if policy.require_uppercase && !password.chars().any(char::is_uppercase) {
            return weak("Password must contain an uppercase letter");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords(policy: PasswordPolicy) -> Passwords {
        let auth = AuthConfig { argon2_memory_kib: 64, argon2_iterations: 1, ..AuthConfig::default() };
        Passwords::new(&auth, policy).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let p = passwords(PasswordPolicy::default());
        let hash = p.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(p.verify("correct horse".into(), hash.clone()).await.unwrap());
        assert!(!p.verify("wrong horse".into(), hash.clone()).await.unwrap());
        assert!(!p.verify("x".into(), "not a hash".into()).await.unwrap());
        assert!(!p.needs_rehash(&hash), "made with the configured parameters");
        let stronger = AuthConfig { argon2_memory_kib: 128, argon2_iterations: 1, ..AuthConfig::default() };
        let stronger = Passwords::new(&stronger, PasswordPolicy::default()).unwrap();
        assert!(stronger.needs_rehash(&hash));
        assert!(stronger.verify("correct horse".into(), hash).await.unwrap(), "old hashes still verify");
        assert!(!p.needs_rehash("not a hash"));
        p.verify_decoy("anything".into()).await.unwrap();
        assert!(p.decoy.get().unwrap().starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "the configured parameters");
    }

    #[test]
    fn the_policy_names_what_is_missing() {
        let strict = PasswordPolicy {
            min_length: 10,
            require_digit: true,
            require_symbol: true,
            require_lowercase: true,
            require_uppercase: true,
        };
        let p = passwords(strict);
        assert!(p.check_policy("Short1!").is_err());
        assert!(p.check_policy("nouppercase1!").is_err());
        assert!(p.check_policy("NoDigitsHere!").is_err());
        assert!(p.check_policy("NoSymbols123").is_err());
        assert!(p.check_policy("Go0d-Enough!").is_ok());
    }
}
