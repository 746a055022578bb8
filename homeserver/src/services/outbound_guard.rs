//! Keeps the server's own outbound requests (URL previews, federation) off internal networks
//! (SSRF): every address such a request connects to, for the first URL and for each redirect,
//! must be public or inside a range the admin allowed. Names
//! are resolved here and the connection goes to exactly the addresses checked, so a name that
//! resolves to a public address at check time and a private one at connect time (DNS
//! rebinding) gains nothing.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};

use crate::services::media::{IpRange, is_internal};

/// Redirects followed before a preview gives up.
const MAX_REDIRECTS: usize = 5;

/// The ranges an admin let previews reach although they are internal.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    allowed: Arc<Vec<IpRange>>,
}

/// A preview refused because its target is on an internal network.
#[derive(Debug)]
pub struct Blocked(pub String);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is on a private network", self.0)
    }
}

impl std::error::Error for Blocked {}

impl AddressPolicy {
    pub fn new(allowed: Vec<IpRange>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }

    pub fn permits(&self, address: IpAddr) -> bool {
        !is_internal(address) || self.allowed.iter().any(|range| range.contains(address))
    }

    /// Checks a URL before it is fetched: http or https, and an IP-literal host permitted
    /// (named hosts are checked when they are resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Blocked(format!("{} (only http and https)", url.scheme())));
        }
        let Some(host) = url.host_str() else {
            return Err(Blocked("a URL without a host".into()));
        };
        // IP literals are connected to without resolving, so they are checked here.
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(address) if !self.permits(address) => Err(Blocked(address.to_string())),
            _ => Ok(()),
        }
    }

    /// Follows at most `MAX_REDIRECTS` redirects, each to a permitted URL.
    pub fn redirect_policy(&self) -> redirect::Policy {
        let policy = self.clone();
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(blocked) => attempt.error(blocked),
            }
        })
    }
}

/// Resolves through the system resolver and keeps only permitted addresses.
impl Resolve for AddressPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> =
                found.iter().copied().filter(|address| policy.permits(address.ip())).collect();
            if permitted.is_empty() {
                let shown = match found.first() {
                    Some(address) => format!("{host} ({})", address.ip()),
                    None => host,
                };
                return Err(Box::new(Blocked(shown)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// Whether `error` (or anything that caused it) is a `Blocked` refusal.
pub fn blocked_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Blocked> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(blocked) = error.downcast_ref::<Blocked>() {
            return Some(blocked);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn internal_targets_are_refused_unless_allowed() {
        let strict = AddressPolicy::default();
        for url in ["http://127.0.0.1/", "http://[::1]:8008/", "http://169.254.169.254/latest", "http://10.0.0.1/"] {
            assert!(strict.check_url(&Url::parse(url).unwrap()).is_err(), "{url}");
        }
        for url in ["file:///etc/passwd", "ftp://example.org/", "gopher://example.org/"] {
            assert!(strict.check_url(&Url::parse(url).unwrap()).is_err(), "{url}");
        }
        assert!(strict.check_url(&Url::parse("https://93.184.215.14/").unwrap()).is_ok());
        assert!(strict.check_url(&Url::parse("https://example.org/").unwrap()).is_ok());
        let relaxed = AddressPolicy::new(vec![IpRange::parse("127.0.0.1/32").unwrap()]);
        assert!(relaxed.check_url(&Url::parse("http://127.0.0.1:9000/").unwrap()).is_ok());
        assert!(relaxed.check_url(&Url::parse("http://127.0.0.2/").unwrap()).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused() {
        let strict = AddressPolicy::default();
        let error = strict.resolve(Name::from_str("localhost").unwrap()).await.err().expect("localhost is internal");
        assert!(blocked_cause(error.as_ref()).is_some());
        let relaxed = AddressPolicy::new(vec![IpRange::parse("127.0.0.0/8").unwrap()]);
        let addresses: Vec<_> = relaxed.resolve(Name::from_str("localhost").unwrap()).await.unwrap().collect();
        assert!(addresses.iter().all(|address| address.ip().is_loopback()));
    }
}
