//! TLS for requests this server makes itself (URL previews now, federation later): rustls with
//! the aws-lc provider the S3 client already uses, and the system's root certificates. Built
//! explicitly rather than through rustls' process-wide default provider: nothing global is
//! installed, and reqwest's own default (ring) only serves clients built without this config.

use std::sync::Arc;

pub fn client_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system root certificates: outbound HTTPS requests will fail");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
