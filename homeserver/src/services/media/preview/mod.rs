//! URL previews (spec: GET /_matrix/client/v1/media/preview_url): the server fetches a page a
//! user posted and answers its OpenGraph data, with the page's image stored as local media so
//! clients load it from us. Off unless `media.url_preview.enabled`; fetches go only to public
//! addresses (see `guard`), are bounded in size, time and number at once, and each answer is
//! kept for an hour so a link posted in a busy room is fetched once.

mod opengraph;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::{Url, header};
use serde_json::{Map, Value, json};

use super::{IpRange, Media, thumbnail};
use crate::services::outbound_guard::{self as guard, AddressPolicy, blocked_cause};
use crate::{
    config::UrlPreviewConfig,
    error::{ApiError, ApiResult, ErrorKind},
};

/// How long an answer is reused.
const CACHE_LIFETIME: Duration = Duration::from_secs(3600);
/// The most answers kept.
const CACHE_ENTRIES: usize = 1000;
/// The longest one fetch (page or image, redirects included) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Previews fetched at once, across all users.
const CONCURRENT_FETCHES: usize = 4;

pub struct UrlPreviews {
    config: UrlPreviewConfig,
    media: Arc<Media>,
    client: reqwest::Client,
    policy: AddressPolicy,
    cache: Mutex<HashMap<String, (Instant, Arc<Value>)>>,
    fetching: tokio::sync::Semaphore,
}

/// A fetched body, cut at the size limit.
struct Fetched {
    url: Url,
    content_type: String,
    body: Vec<u8>,
    complete: bool,
}

impl UrlPreviews {
    pub fn new(config: UrlPreviewConfig, media: Arc<Media>) -> anyhow::Result<Self> {
        let ranges = config.allowed_ip_ranges.iter().filter_map(|range| IpRange::parse(range)).collect();
        let policy = AddressPolicy::new(ranges);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(crate::services::outbound_tls::client_config()?)
            .dns_resolver(Arc::new(policy.clone()))
            .redirect(policy.redirect_policy())
            // A proxy would resolve names itself, past the address checks.
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION"), " (URL preview)"))
            .build()?;
        Ok(Self {
            config,
            media,
            client,
            policy,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Semaphore::new(CONCURRENT_FETCHES),
        })
    }

    /// The preview of `url` for `user_id` (who becomes the uploader of the page's image).
    pub async fn preview(&self, user_id: &str, url: &str) -> ApiResult<Arc<Value>> {
        if !self.config.enabled {
            return Err(ApiError::new(
                ErrorKind::Unrecognized { method_not_allowed: false },
                "URL previews are turned off on this server",
            ));
        }
        let url = Url::parse(url).map_err(|_| ApiError::invalid_param("url is not an absolute URL"))?;
        self.policy.check_url(&url).map_err(refused)?;
        let key = cache_key(&url);
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let _permit = self.fetching.acquire().await.map_err(ApiError::internal)?;
        // Another request may have fetched it while this one waited.
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let page = self.fetch(url).await?;
        let preview = Arc::new(self.describe(user_id, page).await?);
        self.remember(key, preview.clone());
        Ok(preview)
    }

    async fn describe(&self, user_id: &str, page: Fetched) -> ApiResult<Value> {
        if page.content_type.starts_with("image/") {
            if !page.complete {
                return Err(ApiError::new(ErrorKind::BadGateway, "The image is larger than previews may fetch"));
            }
            let mut preview = Map::new();
            if let Some(image) = self.store_image(user_id, page).await {
                preview.extend(image);
            }
            return Ok(Value::Object(preview));
        }
        if !matches!(page.content_type.as_str(), "text/html" | "application/xhtml+xml") {
            // Nothing to show for other kinds of documents: an empty preview, as the spec allows.
            return Ok(json!({}));
        }
        let properties = opengraph::parse(&page.body);
        let mut preview: Map<String, Value> =
            properties.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect();
        // The page's own image fields describe a URL we replace with our copy (or drop).
        preview.retain(|key, _| !key.starts_with("og:image"));
        let image_url = properties
            .get("og:image")
            .or_else(|| properties.get("og:image:url"))
            .or_else(|| properties.get("og:image:secure_url"))
            .and_then(|image| page.url.join(image).ok());
        if let Some(image_url) = image_url
            && self.policy.check_url(&image_url).is_ok()
            && let Ok(image) = self.fetch(image_url).await
            && image.complete
            && let Some(image) = self.store_image(user_id, image).await
        {
            preview.extend(image);
        }
        Ok(Value::Object(preview))
    }

    /// Stores a fetched image as local media; `None` when it is not an image we accept.
    async fn store_image(&self, user_id: &str, image: Fetched) -> Option<Map<String, Value>> {
        let (width, height) = thumbnail::dimensions(&image.body).ok()?;
        let size = image.body.len();
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(image.body))]);
        let uri = match self.media.upload(user_id, Some(&image.content_type), None, body).await {
            Ok(uri) => uri,
            Err(error) => {
                tracing::debug!(error = %error.message, "preview image refused");
                return None;
            }
        };
        let mut fields = Map::new();
        fields.insert("og:image".into(), uri.into());
        fields.insert("og:image:type".into(), image.content_type.into());
        fields.insert("og:image:width".into(), width.into());
        fields.insert("og:image:height".into(), height.into());
        fields.insert("matrix:image:size".into(), size.into());
        Some(fields)
    }

    /// GETs `url`, keeping at most `max_bytes` of the body.
    async fn fetch(&self, url: Url) -> ApiResult<Fetched> {
        let mut response = self.client.get(url).send().await.map_err(fetch_failed)?;
        if !response.status().is_success() {
            return Err(ApiError::new(ErrorKind::BadGateway, format!("The page answered {}", response.status())));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(super::checks::essence)
            .unwrap_or_default();
        let limit = usize::try_from(self.config.max_bytes).unwrap_or(usize::MAX);
        let mut body = Vec::new();
        let mut complete = true;
        while let Some(chunk) = response.chunk().await.map_err(fetch_failed)? {
            if body.len() + chunk.len() > limit {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                complete = false;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { url: response.url().clone(), content_type, body, complete })
    }

    fn cached(&self, key: &str) -> Option<Arc<Value>> {
        let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(key).filter(|(at, _)| at.elapsed() < CACHE_LIFETIME).map(|(_, preview)| preview.clone())
    }

    fn remember(&self, key: String, preview: Arc<Value>) {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_LIFETIME);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), preview));
    }
}

/// The URL without its fragment: `#section` does not change what is fetched.
fn cache_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}

fn refused(blocked: guard::Blocked) -> ApiError {
    ApiError::forbidden(format!("Cannot preview {blocked}"))
}

fn fetch_failed(error: reqwest::Error) -> ApiError {
    if let Some(blocked) = blocked_cause(&error) {
        return refused(guard::Blocked(blocked.0.clone()));
    }
    let reason = if error.is_timeout() { "timed out".to_owned() } else { error.without_url().to_string() };
    ApiError::new(ErrorKind::BadGateway, format!("Could not fetch the page: {reason}"))
}
