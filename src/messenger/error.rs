//! Graph API errors: parsed, classified into the core's [`DeliveryErrorKind`]s, kept as the
//! `source()` of a [`DeliveryError`].
//!
//! | code / subcode | meaning | kind |
//! |---|---|---|
//! | 1200; 2 | temporary failure | retryable |
//! | 4, 9, 17, 32, 613, 80006 | rate limits | retryable, and the sender slows down |
//! | 4 / 2018354 | marketing message too soon | other |
//! | 2 / 2018344, 1, 368, 10303 | configuration, policy block, account linking | other |
//! | 10 / 2018278, 10 / 2018065 | outside the messaging window | window closed |
//! | 10 / 2018108, 100 / 2018001, 100 / 33, 551, 200 / 1545041 | person cannot be reached | unreachable |
//! | 100 (other subcodes) | invalid parameter | invalid message |
//! | 190, 10 and 200 (other subcodes), invalid `appsecret_proof` | credentials or permissions | unauthorized |
//! | HTTP 5xx or 429 without a Graph body | server trouble | retryable |

use std::{fmt, time::Duration};

use serde::Deserialize;

use crate::transport::{DeliveryError, DeliveryErrorKind};

/// An error the Graph API answered with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub struct GraphError {
    /// Graph's message.
    pub message: String,
    /// Graph's error type (`OAuthException`, ...).
    #[serde(rename = "type", default)]
    pub error_type: Option<String>,
    /// The error code.
    pub code: i64,
    /// The error subcode, if any.
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// The trace id to quote to Meta support.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph API error {}", self.code)?;
        if let Some(sub) = self.error_subcode {
            write!(f, "/{sub}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(trace) = &self.fbtrace_id {
            write!(f, " (fbtrace_id {trace})")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

impl GraphError {
    /// A Graph error with the given code, subcode and message.
    pub fn new(code: i64, subcode: Option<i64>, message: impl Into<String>) -> Self {
        GraphError {
            message: message.into(),
            error_type: None,
            code,
            error_subcode: subcode,
            fbtrace_id: None,
        }
    }

    /// Parses an error body (`{"error":{...}}`); `None` if it is not one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error)
    }

    /// Whether this is one of Graph's rate limits (the sender should slow down).
    pub fn is_rate_limit(&self) -> bool {
        matches!(
            (self.code, self.error_subcode),
            (4, None | Some(2018022)) | (9, _) | (17 | 32 | 613 | 80006, _)
        )
    }

    /// The core kind of this failure; see the [module docs](self) for the table.
    pub fn kind(&self) -> DeliveryErrorKind {
        use DeliveryErrorKind::*;
        if self.message.contains("appsecret_proof") {
            return Unauthorized;
        }
        match (self.code, self.error_subcode) {
            (4, Some(2018354)) => Other,
            _ if self.is_rate_limit() => Retryable,
            (1200, _) => Retryable,
            (2, Some(2018344)) => Other,
            (2, _) => Retryable,
            (10, Some(2018278 | 2018065)) => WindowClosed,
            (10, Some(2018108)) | (100, Some(2018001 | 33)) | (551, _) | (200, Some(1545041)) => {
                Unreachable
            }
            (100, _) => InvalidMessage,
            (190, _) | (10, _) | (200, _) => Unauthorized,
            _ => Other,
        }
    }
}

/// Why a call to the Graph API failed: the rich error kept as a [`DeliveryError`]'s source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerError {
    /// Graph answered with an error.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The request did not complete (connection, TLS, timeout). The URL, which carries the
    /// access token, is removed from the error.
    #[error("request to the Graph API failed")]
    Http(#[source] reqwest::Error),
    /// Graph answered with something that is not a Graph error or result.
    #[error("unexpected Graph API response (HTTP {status}): {body}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// The start of the body, for diagnosis.
        body: Box<str>,
    },
    /// The shared send budget could not be read; nothing was sent.
    #[error("the shared send budget failed; nothing was sent")]
    Budget(#[source] crate::error::StoreError),
}

impl MessengerError {
    /// Wraps a reqwest error after removing its URL (which carries the access token).
    pub(crate) fn http(e: reqwest::Error) -> Self {
        MessengerError::Http(e.without_url())
    }

    /// The core kind of this failure.
    pub fn kind(&self) -> DeliveryErrorKind {
        match self {
            MessengerError::Graph(g) => g.kind(),
            MessengerError::Http(_) => DeliveryErrorKind::Retryable,
            MessengerError::UnexpectedResponse { status, .. }
                if *status >= 500 || *status == 429 =>
            {
                DeliveryErrorKind::Retryable
            }
            MessengerError::UnexpectedResponse { .. } => DeliveryErrorKind::Other,
            MessengerError::Budget(_) => DeliveryErrorKind::Retryable,
        }
    }

    /// Whether the transport may retry on its own: Graph said the send failed and may work
    /// later, or the connection was never made. A timeout or a dropped connection is
    /// uncertain (Graph may have accepted the message), so it is left to the caller, who can
    /// tell from its own records whether to send again.
    pub fn may_auto_retry(&self) -> bool {
        match self {
            MessengerError::Http(e) => e.is_connect(),
            _ => self.kind() == DeliveryErrorKind::Retryable,
        }
    }

    /// Whether the failure is a rate limit.
    pub fn is_rate_limit(&self) -> bool {
        match self {
            MessengerError::Graph(g) => g.is_rate_limit(),
            MessengerError::UnexpectedResponse { status, .. } => *status == 429,
            MessengerError::Http(_) | MessengerError::Budget(_) => false,
        }
    }

    /// Converts into the core error, with this error as the source.
    pub fn into_delivery_error(self, rate_limit_pause: Duration) -> DeliveryError {
        let mut e = DeliveryError::new(self.kind(), self.to_string());
        if self.is_rate_limit() {
            e = e.with_retry_after(rate_limit_pause);
        }
        e.with_source(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: i64, sub: Option<i64>) -> DeliveryErrorKind {
        GraphError::new(code, sub, "x").kind()
    }

    #[test]
    fn the_digest_table_classifies_as_documented() {
        use DeliveryErrorKind::*;
        let table = [
            ((1200, None), Retryable),
            ((2, None), Retryable),
            ((2, Some(2018344)), Other),
            ((1, Some(99)), Other),
            ((4, None), Retryable),
            ((4, Some(2018022)), Retryable),
            ((4, Some(2018354)), Other),
            ((9, Some(2018352)), Retryable),
            ((17, None), Retryable),
            ((32, None), Retryable),
            ((613, None), Retryable),
            ((80006, None), Retryable),
            ((100, None), InvalidMessage),
            ((100, Some(2018001)), Unreachable),
            ((100, Some(2018109)), InvalidMessage),
            ((100, Some(2018034)), InvalidMessage),
            ((100, Some(33)), Unreachable),
            ((190, None), Unauthorized),
            ((10, Some(2018278)), WindowClosed),
            ((10, Some(2018065)), WindowClosed),
            ((10, Some(2018108)), Unreachable),
            ((200, Some(1545041)), Unreachable),
            ((551, Some(1545041)), Unreachable),
            ((551, None), Unreachable),
            ((200, Some(2018028)), Unauthorized),
            ((200, None), Unauthorized),
            ((368, None), Other),
            ((10303, None), Other),
            ((123456, None), Other),
        ];
        for ((code, sub), expected) in table {
            assert_eq!(kind(code, sub), expected, "{code}/{sub:?}");
        }
        assert!(GraphError::new(613, None, "x").is_rate_limit());
        assert!(!GraphError::new(4, Some(2018354), "x").is_rate_limit());
        assert_eq!(
            GraphError::new(
                100,
                None,
                "Invalid appsecret_proof provided in the API argument"
            )
            .kind(),
            Unauthorized
        );
    }

    #[test]
    fn parses_a_graph_error_body() {
        let body = br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"BLBz/WZt8dN"}}"#;
        let e = GraphError::from_body(body).unwrap();
        assert_eq!((e.code, e.error_subcode), (10, Some(2018278)));
        assert_eq!(e.error_type.as_deref(), Some("OAuthException"));
        assert_eq!(
            e.to_string(),
            "Graph API error 10/2018278: (#10) This message is sent outside of allowed window. (fbtrace_id BLBz/WZt8dN)"
        );
        assert!(GraphError::from_body(b"<html>bad gateway</html>").is_none());
        assert!(GraphError::from_body(br#"{"error":"nope"}"#).is_none());
    }

    #[test]
    fn rate_limits_become_retryable_with_a_pause() {
        let e = MessengerError::Graph(GraphError::new(613, None, "slow down"))
            .into_delivery_error(Duration::from_secs(2));
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(std::error::Error::source(&e).is_some());
        let e = MessengerError::UnexpectedResponse {
            status: 502,
            body: "bad gateway".into(),
        };
        assert_eq!(e.kind(), DeliveryErrorKind::Retryable);
    }
}
