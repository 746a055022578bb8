//! The S3 media store (aws-sdk-s3): objects in one bucket under an optional prefix, on AWS or
//! any S3-compatible server (MinIO, Garage, moto) by endpoint and path-style addressing.
//! Uploads stream from the temporary file, downloads stream from S3 (ranged GETs for ranges).

use std::{io, path::Path};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    primitives::ByteStream as S3Bytes,
};
use bytes::Bytes;

use super::store::ByteStream;
use crate::config::S3Config;

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

fn to_io(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(error)
}

/// An SDK error with its whole cause chain (the SDK's own Display says only "service error").
fn sdk_error<E: std::error::Error>(error: E) -> io::Error {
    io::Error::other(aws_sdk_s3::error::DisplayErrorContext(error).to_string())
}

impl S3Store {
    /// Connects and checks that the bucket is there (a clear error at start-up, not at the
    /// first upload).
    pub async fn connect(config: &S3Config) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
        if !config.access_key_id.expose().is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                config.access_key_id.expose(),
                config.secret_access_key.expose(),
                None,
                None,
                "hearth-config",
            ));
        }
        if !config.endpoint.is_empty() {
            loader = loader.endpoint_url(&config.endpoint);
        }
        let shared = loader.load().await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style).build();
        let store =
            Self { client: Client::from_conf(s3), bucket: config.bucket.clone(), prefix: config.prefix.clone() };
        store.client.head_bucket().bucket(&store.bucket).send().await.map_err(|error| {
            anyhow::anyhow!(
                "media.s3: cannot reach bucket {:?}: {}",
                store.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&error)
            )
        })?;
        Ok(store)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Uploads the file (streamed from disk), then removes it.
    pub async fn put_file(&self, key: &str, source: &Path) -> io::Result<()> {
        let body = S3Bytes::from_path(source).await.map_err(to_io)?;
        self.client.put_object().bucket(&self.bucket).key(self.key(key)).body(body).send().await.map_err(sdk_error)?;
        tokio::fs::remove_file(source).await
    }

    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(S3Bytes::from(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    pub async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(object.body.into_async_read(), 64 * 1024)))
    }

    pub async fn delete(&self, key: &str) -> io::Result<()> {
        self.client.delete_object().bucket(&self.bucket).key(self.key(key)).send().await.map_err(sdk_error)?;
        Ok(())
    }
}
