//! TLS settings for git connections, built once per process. reqwest would otherwise build them for
//! every connection's client: load and parse the system's root certificates, then set up a verifier.
//! That was three quarters of the CPU of a run where nothing changed.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::ClientConfig;

/// The settings reqwest builds by default (the platform's roots through rustls-platform-verifier,
/// aws-lc-rs, TLS 1.2 and 1.3, HTTP/2 or HTTP/1.1 by ALPN), or why they could not be built — for
/// example a system without root certificates, which reqwest would report for every connection too.
pub fn client_config() -> Result<ClientConfig, String> {
    static CONFIG: OnceLock<Result<ClientConfig, String>> = OnceLock::new();
    CONFIG.get_or_init(build).clone()
}

fn build() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
        .map_err(|err| format!("TLS certificate verification cannot be set up: {err}"))?;
    let mut config = ClientConfig::builder_with_provider(Arc::<CryptoProvider>::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS protocol versions cannot be set up: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
