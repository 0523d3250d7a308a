//! How the connection to the relay is protected.

use lettre::transport::smtp::client::{Certificate, TlsParameters};

use super::BuildError;

const CERT_PEM_LABEL: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// How the connection to the SMTP relay is protected. Certificates are checked against the
/// Mozilla root store (webpki-roots) and any root added with
/// [`EmailTransportBuilder::root_certificate_pem`](super::EmailTransportBuilder::root_certificate_pem).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsMode {
    /// Plain SMTP, no TLS: only for a relay on loopback or a private network. Credentials
    /// would travel in clear.
    None,
    /// Connect in plain text, then require `STARTTLS` before anything else is sent (refusing a
    /// server that does not offer it, so no downgrade is possible). Port 587 by default.
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, "implicit TLS"). Port 465 by default.
    Implicit,
}

impl TlsMode {
    /// The port used unless another is configured: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
        }
    }

    /// lettre's TLS parameters for this mode (`None` for plain SMTP), validating certificates
    /// for `host`.
    pub(crate) fn parameters(
        self,
        host: &str,
        roots: &[Vec<u8>],
    ) -> Result<Option<TlsParameters>, BuildError> {
        if self == TlsMode::None {
            return Ok(None);
        }
        let mut params = TlsParameters::builder(host.to_owned());
        for pem in roots {
            if !pem
                .windows(CERT_PEM_LABEL.len())
                .any(|w| w == CERT_PEM_LABEL)
            {
                return Err(BuildError::Certificate("no certificate in the PEM".into()));
            }
            let cert = Certificate::from_pem(pem).map_err(|e| BuildError::Certificate(e.into()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| BuildError::Tls(e.into()))?;
        Ok(Some(params))
    }
}
