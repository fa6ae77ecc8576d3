//! The AWS configuration, loaded once per process ([`loader`]), with the one HTTPS client every SDK client of
//! the process shares ([`https_client`]).
//!
//! **Root certificates, and when.** The SDK's default HTTPS client (aws-smithy-http-client's hyper client,
//! rustls over aws-lc) trusts the platform's roots, and builds its TLS configuration when an SDK client is
//! *constructed* (`validate_base_client_config`, on purpose: "so that native certs load at client
//! initialization time"): the first `Client::new` of a process reads every file the OpenSSL probe finds
//! (`/etc/ssl/certs/*` and the bundle, about 3.5 ms here), and every further client parses them all again into a
//! TLS configuration of its own. That is cold start, in every function, whether or not it calls AWS before its
//! first event. Ours differs in two ways:
//! - **compiled-in roots** (Mozilla's, `webpki-root-certs`): no file is read, the same roots on every machine.
//!   AWS's endpoints chain to Amazon Trust Services roots, which Mozilla's list carries. The price: a root the
//!   operating system adds or removes is seen at the next build (`cargo update -p webpki-root-certs`), and an
//!   endpoint behind a private CA is not trusted (the local stack's emulators are plain HTTP);
//! - **built at the first request** ([`OnFirstRequest`]), once per connector setting for the whole process
//!   (one client shared by every SDK client), not once per SDK client at init.

use std::sync::LazyLock;

use aws_config::ConfigLoader;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use base64::Engine as _;

/// The default chain (environment, then profile files, container and instance credentials), with
/// [`https_client`]: every SDK client made from the loaded configuration shares that one client. Add what a
/// caller needs (timeouts) and `.load().await` it once per process.
pub fn loader() -> ConfigLoader {
    aws_config::from_env().http_client(https_client())
}

/// An HTTPS client as the SDK's default one (rustls with aws-lc, its cipher suites, the proxy from the
/// environment), trusting [`compiled_in_roots`] rather than the files of the platform's store, and making its
/// TLS configuration at the first request rather than when an SDK client is constructed.
pub fn https_client() -> SharedHttpClient {
    // Called once per distinct connector setting (timeouts), at the first request that needs it.
    let hyper = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(ROOTS.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    OnFirstRequest(hyper).into_shared()
}

/// The hyper client without its eager connector: it keeps the default `validate_base_client_config` (nothing),
/// so constructing an SDK client costs nothing, and the connector is made by the first request that needs it.
#[derive(Debug)]
struct OnFirstRequest(SharedHttpClient);

impl HttpClient for OnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The TLS context of [`https_client`], made at its first use.
static ROOTS: LazyLock<TlsContext> = LazyLock::new(|| {
    TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(compiled_in_roots()))
        .build()
        // Only a TLS provider without support for the context's settings fails; rustls supports them all.
        .unwrap_or_default()
});

/// Mozilla's root certificates as compiled into the binary, as one PEM bundle: the trust store of the HTTP
/// client takes PEM.
pub fn compiled_in_roots() -> Vec<u8> {
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
    let mut pem = Vec::with_capacity(roots.iter().map(|c| c.len() * 4 / 3 + 64).sum());
    for cert in roots {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        pem.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(cert.as_ref())
                .as_bytes(),
        );
        pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_bundle_is_every_compiled_in_root_as_the_client_parses_it() {
        let pem = super::compiled_in_roots();
        let parsed: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .expect("the client's PEM parser reads the bundle");
        assert_eq!(parsed.as_slice(), webpki_root_certs::TLS_SERVER_ROOT_CERTS);
        // Amazon Trust Services: what AWS's endpoints chain to.
        let amazon = |c: &CertificateDer<'_>| c.windows(16).any(|w| w == b"Amazon Root CA 1");
        assert!(parsed.iter().any(amazon));
    }

    #[tokio::test]
    async fn every_client_of_the_configuration_shares_the_one_http_client() {
        let aws = super::loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .load()
            .await;
        assert!(aws.http_client().is_some());
    }
}
