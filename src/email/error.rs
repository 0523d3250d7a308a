//! Why an [`EmailTransport`](super::EmailTransport) could not be built.

use std::error::Error as StdError;

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Why an [`EmailTransport`](super::EmailTransport) could not be built. Nothing here is
/// found by sending: every setting is checked by
/// [`build`](super::EmailTransportBuilder::build).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The relay host is empty or contains characters no host name has.
    #[error("invalid SMTP relay host {0:?}")]
    InvalidHost(String),
    /// The From address is not one an SMTP server accepts.
    #[error("invalid From address {address:?}")]
    InvalidFrom {
        /// The address as given.
        address: String,
        /// lettre's reason.
        #[source]
        source: Source,
    },
    /// The Reply-To address is not one an SMTP server accepts.
    #[error("invalid Reply-To address {address:?}")]
    InvalidReplyTo {
        /// The address as given.
        address: String,
        /// lettre's reason.
        #[source]
        source: Source,
    },
    /// A header value (a subject, the sender's name) has a line break or is empty.
    #[error("the {0} must be a non-empty single line")]
    InvalidHeader(&'static str),
    /// An added root certificate is not a PEM certificate.
    #[error("the root certificate is not a PEM certificate")]
    Certificate(#[source] Source),
    /// The TLS settings could not be built.
    #[error("the TLS settings could not be built")]
    Tls(#[source] Source),
}
