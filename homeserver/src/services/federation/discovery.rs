//! Where another server is reached (spec: Server-Server API § Resolving server names): an IP
//! literal or an explicit port directly; otherwise /.well-known/matrix/server, then the
//! `_matrix-fed._tcp` SRV record (then the deprecated `_matrix._tcp`), then port 8448. Answers
//! that needed a lookup are cached for an hour.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::ServerName;

/// How long a resolution that needed lookups is reused.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// The port a server is reached on when nothing names another.
const DEFAULT_PORT: u16 = 8448;

/// Where and how to send requests for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host in the request URL, which is also the TLS server name: a hostname, an IPv4
    /// address or a bracketed IPv6 address.
    pub url_host: String,
    pub port: u16,
    /// The `Host` header the spec asks for at this step.
    pub host_header: String,
    /// An SRV target whose addresses `url_host` is connected through (the certificate must
    /// still be valid for `url_host`).
    pub resolve_via: Option<String>,
}

impl Destination {
    fn direct(host: &str, port: u16, host_header: String) -> Self {
        Self { url_host: host.to_owned(), port, host_header, resolve_via: None }
    }
}

/// The network lookups discovery makes; a trait so the decisions are tested without a network.
pub trait Lookups {
    /// The `m.server` of https://{host}/.well-known/matrix/server, if it answers one.
    fn well_known(&self, host: &str) -> impl Future<Output = Option<String>> + Send;
    /// The preferred target (host, port) of an SRV record.
    fn srv(&self, name: &str) -> impl Future<Output = Option<(String, u16)>> + Send;
}

/// Splits a server name into host and optional port (ruma has already validated it).
fn split(name: &ServerName) -> (String, Option<u16>) {
    (name.host().to_owned(), name.port())
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
}

/// Resolves `name` by the spec's steps.
pub async fn resolve(name: &ServerName, lookups: &impl Lookups) -> Destination {
    let (host, port) = split(name);
    if is_ip_literal(&host) {
        return Destination::direct(&host, port.unwrap_or(DEFAULT_PORT), name.to_string());
    }
    if let Some(port) = port {
        return Destination::direct(&host, port, name.to_string());
    }
    if let Some(delegated) = lookups.well_known(&host).await
        && let Ok(delegated) = ServerName::parse(delegated.as_str())
    {
        let (delegated_host, delegated_port) = split(&delegated);
        if is_ip_literal(&delegated_host) {
            return Destination::direct(&delegated_host, delegated_port.unwrap_or(DEFAULT_PORT), delegated.to_string());
        }
        if let Some(port) = delegated_port {
            return Destination::direct(&delegated_host, port, delegated.to_string());
        }
        return by_srv_or_default(&delegated_host, lookups).await;
    }
    by_srv_or_default(&host, lookups).await
}

async fn by_srv_or_default(host: &str, lookups: &impl Lookups) -> Destination {
    for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
        if let Some((target, port)) = lookups.srv(&format!("{service}.{host}")).await {
            let target = target.trim_end_matches('.').to_owned();
            let resolve_via = (target != host).then_some(target);
            return Destination { url_host: host.to_owned(), port, host_header: host.to_owned(), resolve_via };
        }
    }
    Destination::direct(host, DEFAULT_PORT, host.to_owned())
}

/// Resolutions that needed lookups, for an hour each.
#[derive(Default)]
pub struct DestinationCache {
    entries: Mutex<HashMap<String, (Destination, Instant)>>,
}

impl DestinationCache {
    pub async fn resolve(&self, name: &ServerName, lookups: &impl Lookups) -> Destination {
        if let Some((destination, at)) = self.entries.lock().expect("destination cache").get(name.as_str())
            && at.elapsed() < CACHE_FOR
        {
            return destination.clone();
        }
        let destination = resolve(name, lookups).await;
        let needed_lookups = name.port().is_none() && !is_ip_literal(name.host());
        if needed_lookups {
            self.entries
                .lock()
                .expect("destination cache")
                .insert(name.to_string(), (destination.clone(), Instant::now()));
        }
        destination
    }

    /// Forgets a server's resolution (after its connection failed, say).
    pub fn forget(&self, name: &ServerName) {
        self.entries.lock().expect("destination cache").remove(name.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        well_known: HashMap<&'static str, &'static str>,
        srv: HashMap<&'static str, (&'static str, u16)>,
    }

    impl Lookups for Fake {
        async fn well_known(&self, host: &str) -> Option<String> {
            self.well_known.get(host).map(|s| s.to_string())
        }
        async fn srv(&self, name: &str) -> Option<(String, u16)> {
            self.srv.get(name).map(|(target, port)| (target.to_string(), *port))
        }
    }

    async fn resolved(name: &str, fake: &Fake) -> Destination {
        resolve(&ServerName::parse(name).unwrap(), fake).await
    }

    fn at(url_host: &str, port: u16, host_header: &str, via: Option<&str>) -> Destination {
        Destination {
            url_host: url_host.into(),
            port,
            host_header: host_header.into(),
            resolve_via: via.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn ip_literals_and_explicit_ports_are_contacted_directly() {
        let mut fake = Fake::default();
        // Lookups that would redirect are not even asked.
        fake.well_known.insert("example.org", "elsewhere.example:1");
        assert_eq!(resolved("127.0.0.1", &fake).await, at("127.0.0.1", 8448, "127.0.0.1", None));
        assert_eq!(resolved("127.0.0.1:9000", &fake).await, at("127.0.0.1", 9000, "127.0.0.1:9000", None));
        assert_eq!(resolved("[::1]:9000", &fake).await, at("[::1]", 9000, "[::1]:9000", None));
        assert_eq!(resolved("example.org:8449", &fake).await, at("example.org", 8449, "example.org:8449", None));
    }

    #[tokio::test]
    async fn well_known_delegation_is_followed_by_its_own_steps() {
        let mut fake = Fake::default();
        fake.well_known.insert("a.example", "matrix.a.example:443");
        fake.well_known.insert("b.example", "10.1.2.3");
        fake.well_known.insert("c.example", "matrix.c.example");
        fake.srv.insert("_matrix-fed._tcp.matrix.c.example", ("srv.c.example.", 8000));
        fake.well_known.insert("d.example", "matrix.d.example");
        fake.srv.insert("_matrix._tcp.matrix.d.example", ("matrix.d.example", 8001));
        fake.well_known.insert("e.example", "matrix.e.example");
        fake.well_known.insert("f.example", "not a server name!");
        assert_eq!(resolved("a.example", &fake).await, at("matrix.a.example", 443, "matrix.a.example:443", None));
        assert_eq!(resolved("b.example", &fake).await, at("10.1.2.3", 8448, "10.1.2.3", None));
        assert_eq!(
            resolved("c.example", &fake).await,
            at("matrix.c.example", 8000, "matrix.c.example", Some("srv.c.example"))
        );
        assert_eq!(resolved("d.example", &fake).await, at("matrix.d.example", 8001, "matrix.d.example", None));
        assert_eq!(resolved("e.example", &fake).await, at("matrix.e.example", 8448, "matrix.e.example", None));
        // A well-known answer that is no server name counts as none.
        assert_eq!(resolved("f.example", &fake).await, at("f.example", 8448, "f.example", None));
    }

    #[tokio::test]
    async fn without_well_known_srv_then_port_8448() {
        let mut fake = Fake::default();
        fake.srv.insert("_matrix-fed._tcp.g.example", ("target.g.example", 1234));
        assert_eq!(resolved("g.example", &fake).await, at("g.example", 1234, "g.example", Some("target.g.example")));
        assert_eq!(resolved("h.example", &fake).await, at("h.example", 8448, "h.example", None));
    }
}
