//! The rustls configuration for OIAnalytics calls.
//!
//! The ring provider is installed explicitly on the config, so nothing depends on a process-wide
//! default provider. Server certificates are verified against the system CA store plus the
//! Mozilla roots (`webpki-roots`), unless `accept_unauthorized` is set, which accepts any
//! certificate but still checks that the server holds its key (handshake signatures).

use std::sync::Arc;

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tracing::debug;

use super::ClientError;

/// Builds the client TLS config. Reads the system CA store, so build it once and share the `Arc`.
pub(crate) fn client_config(accept_unauthorized: bool) -> Result<Arc<ClientConfig>, ClientError> {
    let mut config = device_config(accept_unauthorized, None, None)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client key and its certificate chain, presented when the server asks.
pub(crate) type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The TLS config of a device connector (an MQTT broker): `roots` instead of the system and
/// Mozilla CAs when given (Node's `ca` option), and a client certificate when given. No ALPN.
pub(crate) fn device_config(
    accept_unauthorized: bool,
    roots: Option<RootCertStore>,
    identity: Option<ClientIdentity>,
) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            ClientError::Settings(format!("the TLS provider rejected its own defaults: {e}"))
        })?;
    let builder = if accept_unauthorized {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
    } else {
        builder.with_root_certificates(roots.unwrap_or_else(root_store))
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            ClientError::Settings(format!(
                "the client certificate and key do not go together: {e}"
            ))
        }),
    }
}

/// System CAs (unreadable ones are skipped: a host without a CA bundle still has the Mozilla
/// roots) plus the Mozilla roots.
fn root_store() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        debug!(%error, "skipping part of the system CA store");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    debug!(added, ignored, "system CA certificates loaded");
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// Accepts any server certificate (`accept_unauthorized`), but still verifies the handshake
/// signatures with the provider's algorithms, so the peer must hold the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_config_has_roots_and_offers_http1() {
        let config = client_config(false).expect("config");
        assert!(config
            .alpn_protocols
            .iter()
            .any(|p| p.as_slice() == b"http/1.1"));
        assert!(!root_store().is_empty(), "at least the Mozilla roots");
    }
}
