//! Outbound server-to-server HTTP: finds the peer (see `discovery`), refuses internal addresses
//! unless allowed (see `outbound_guard`), signs each request with an X-Matrix header and reads
//! the JSON answer with a size bound.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use hearth_federation::{SigningKey, request_auth};
use hickory_resolver::{TokioResolver, config::ResolverConfig, name_server::TokioConnectionProvider};
use reqwest::{
    Method, Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header,
};
use ruma::{OwnedServerName, ServerName};
use serde_json::Value;

use super::discovery::{Destination, DestinationCache, Lookups};
use crate::{
    config::FederationConfig,
    error::{ApiError, ErrorKind},
    services::{
        media::IpRange,
        outbound_guard::{AddressPolicy, Blocked},
        outbound_tls,
    },
};

/// The largest JSON answer read from a peer (a send_join of a large room is tens of MB).
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// The largest /.well-known/matrix/server answer read.
const MAX_WELL_KNOWN_BYTES: usize = 64 * 1024;

/// Why an outbound request failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The peer could not be reached or did not answer HTTP.
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The peer answered with an error.
    #[error("{server} answered {status}: {errcode} {error}")]
    Remote { server: String, status: u16, errcode: String, error: String },
    /// The peer answered something that is not the JSON asked for.
    #[error("{server} sent a bad response: {reason}")]
    BadResponse { server: String, reason: String },
}

impl FederationError {
    /// The Matrix error a client sees when a request it caused failed: the peer's own 404s and
    /// 403s pass through; anything else is a 502.
    pub fn into_api_error(self) -> ApiError {
        match &self {
            FederationError::Remote { status: 404, error, .. } => ApiError::not_found(error.clone()),
            FederationError::Remote { status: 403, error, .. } => ApiError::forbidden(error.clone()),
            _ => ApiError::new(ErrorKind::BadGateway, self.to_string()),
        }
    }
}

/// Resolves names for the HTTP client: SRV targets stand in for the name they were found for,
/// and only permitted addresses are returned.
#[derive(Clone)]
struct PinningResolver {
    policy: AddressPolicy,
    /// url host -> SRV target whose addresses it is reached on.
    pins: Arc<Mutex<HashMap<String, String>>>,
}

impl Resolve for PinningResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let target = self.pins.lock().expect("pins").get(name.as_str()).cloned();
        let (policy, host) = (self.policy.clone(), target.unwrap_or_else(|| name.as_str().to_owned()));
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.permits(a.ip())).collect();
            if permitted.is_empty() {
                let shown = found.first().map_or(host.clone(), |a| format!("{host} ({})", a.ip()));
                return Err(Box::new(Blocked(shown)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

pub struct FederationClient {
    http: reqwest::Client,
    well_known_http: reqwest::Client,
    dns: TokioResolver,
    resolver: PinningResolver,
    destinations: DestinationCache,
    server_name: OwnedServerName,
    key: Arc<SigningKey>,
}

impl FederationClient {
    pub fn new(config: &FederationConfig, server_name: &str, key: Arc<SigningKey>) -> anyhow::Result<Self> {
        let ranges = config.allowed_ip_ranges.iter().filter_map(|range| IpRange::parse(range)).collect();
        let policy = AddressPolicy::new(ranges);
        let resolver = PinningResolver { policy: policy.clone(), pins: Default::default() };
        let tls = if config.verify_certificates {
            outbound_tls::client_config()?
        } else {
            tracing::warn!("federation.verify_certificates is off: peers' certificates are not checked");
            outbound_tls::unverified_client_config()?
        };
        let builder = || {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls.clone())
                .dns_resolver(Arc::new(resolver.clone()))
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION")))
        };
        let http = builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let well_known_http = builder().timeout(Duration::from_secs(10)).redirect(policy.redirect_policy()).build()?;
        let dns = match TokioResolver::builder_tokio() {
            Ok(builder) => builder.build(),
            Err(error) => {
                tracing::warn!(%error, "no system DNS configuration; SRV lookups use the built-in defaults");
                TokioResolver::builder_with_config(ResolverConfig::default(), TokioConnectionProvider::default())
                    .build()
            }
        };
        Ok(Self {
            http,
            well_known_http,
            dns,
            resolver,
            destinations: DestinationCache::default(),
            server_name: ServerName::parse(server_name)?,
            key,
        })
    }

    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// A signed GET; the answer's JSON.
    pub async fn get(&self, destination: &ServerName, path_and_query: &str) -> Result<Value, FederationError> {
        self.send(destination, Method::GET, path_and_query, None, true).await
    }

    /// A signed POST or PUT of `body`; the answer's JSON.
    pub async fn send_json(
        &self,
        destination: &ServerName,
        method: Method,
        path_and_query: &str,
        body: &Value,
    ) -> Result<Value, FederationError> {
        self.send(destination, method, path_and_query, Some(body), true).await
    }

    /// An unsigned GET (key documents are fetched without authentication).
    pub async fn get_unsigned(&self, destination: &ServerName, path: &str) -> Result<Value, FederationError> {
        self.send(destination, Method::GET, path, None, false).await
    }

    async fn send(
        &self,
        destination: &ServerName,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Result<Value, FederationError> {
        let server = destination.to_string();
        let unreachable = |reason: String| FederationError::Unreachable { server: server.clone(), reason };
        let bytes = match body {
            Some(body) => serde_json::to_vec(body).map_err(|error| unreachable(error.to_string()))?,
            None => Vec::new(),
        };
        let mut request = self
            .prepare(destination, method, path_and_query, &bytes, signed)
            .await?
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = request.send().await.map_err(|error| {
            self.destinations.forget(destination);
            unreachable(describe(&error))
        })?;
        let status = response.status();
        let body = read_limited(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|reason| FederationError::BadResponse { server: server.clone(), reason })?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(FederationError::Remote {
                server,
                status: status.as_u16(),
                errcode: json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned(),
                error: json["error"].as_str().unwrap_or("").to_owned(),
            });
        }
        if !json.is_object() {
            return Err(FederationError::BadResponse { server, reason: "the answer is not a JSON object".into() });
        }
        Ok(json)
    }

    /// A signed GET whose answer is not JSON (federation media): its content type and body,
    /// at most `limit` bytes; a redirect is followed once, without authentication.
    pub async fn get_bytes(
        &self,
        destination: &ServerName,
        path_and_query: &str,
        limit: usize,
    ) -> Result<(String, Vec<u8>), FederationError> {
        let server = destination.to_string();
        let unreachable = |reason: String| FederationError::Unreachable { server: server.clone(), reason };
        let request = self.prepare(destination, Method::GET, path_and_query, &[], true).await?;
        let mut response = request.send().await.map_err(|error| unreachable(describe(&error)))?;
        if response.status().is_redirection()
            && let Some(location) = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok())
        {
            let location = Url::parse(location).map_err(|error| unreachable(error.to_string()))?;
            self.resolver.policy.check_url(&location).map_err(|blocked| unreachable(blocked.to_string()))?;
            response = self.http.get(location).send().await.map_err(|error| unreachable(describe(&error)))?;
        }
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = read_limited(response, limit)
            .await
            .map_err(|reason| FederationError::BadResponse { server: server.clone(), reason })?;
        if !status.is_success() {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(FederationError::Remote {
                server,
                status: status.as_u16(),
                errcode: json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned(),
                error: json["error"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok((content_type, body))
    }

    /// A request to `destination`: where the server is found, refused if that is an internal
    /// address, with the spec's Host header and (when `signed`) the X-Matrix signature over
    /// `body` (the bytes the caller sends, if any).
    async fn prepare(
        &self,
        destination: &ServerName,
        method: Method,
        path_and_query: &str,
        body: &[u8],
        signed: bool,
    ) -> Result<reqwest::RequestBuilder, FederationError> {
        let unreachable = |reason: String| FederationError::Unreachable { server: destination.to_string(), reason };
        if destination == self.server_name {
            return Err(unreachable("it is this server".into()));
        }
        let target = self.destinations.resolve(destination, self).await;
        let url = Url::parse(&format!("https://{}:{}{path_and_query}", target.url_host, target.port))
            .map_err(|error| unreachable(format!("bad URL: {error}")))?;
        self.resolver.policy.check_url(&url).map_err(|blocked| unreachable(blocked.to_string()))?;
        self.pin(&target);
        let mut request = self.http.request(method.clone(), url).header(header::HOST, &target.host_header);
        if signed {
            let to_sign = axum::http::Request::builder()
                .method(method)
                .uri(path_and_query)
                .body(body.to_vec())
                .map_err(|error| unreachable(error.to_string()))?;
            let authorization = request_auth::sign_request(&self.key, &self.server_name, destination, &to_sign)
                .map_err(|error| unreachable(error.to_string()))?;
            request = request.header(header::AUTHORIZATION, authorization);
        }
        Ok(request)
    }

    fn pin(&self, target: &Destination) {
        let mut pins = self.resolver.pins.lock().expect("pins");
        match &target.resolve_via {
            Some(via) => pins.insert(target.url_host.clone(), via.clone()),
            None => pins.remove(&target.url_host),
        };
    }
}

impl Lookups for FederationClient {
    async fn well_known(&self, host: &str) -> Option<String> {
        let url = Url::parse(&format!("https://{host}/.well-known/matrix/server")).ok()?;
        self.resolver.policy.check_url(&url).ok()?;
        let response = self.well_known_http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = read_limited(response, MAX_WELL_KNOWN_BYTES).await.ok()?;
        let json: Value = serde_json::from_slice(&body).ok()?;
        json["m.server"].as_str().map(str::to_owned)
    }

    async fn srv(&self, name: &str) -> Option<(String, u16)> {
        let found = self.dns.srv_lookup(name).await.ok()?;
        let mut records: Vec<_> = found.iter().filter(|record| !record.target().is_root()).collect();
        // Lowest priority first; among equals, the heaviest (a simplification of RFC 2782's
        // weighted choice that always picks the same target).
        records.sort_by_key(|record| (record.priority(), std::cmp::Reverse(record.weight())));
        records.first().map(|record| (record.target().to_utf8(), record.port()))
    }
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|length| length as usize > limit) {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes on one line (reqwest's own message hides the cause).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
