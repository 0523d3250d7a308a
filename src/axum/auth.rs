use std::fmt;

use axum::http::{HeaderMap, header::AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Who an authorized agent request comes from (the author recorded on replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity(pub String);

/// The host's guard of the agent API: every request is asked about before anything is read
/// or done, and a request it refuses gets 401 and touches nothing.
///
/// Implement it over the host's sessions or tokens; [`BearerToken`] is a shared secret.
pub trait AgentAuth: Send + Sync + 'static {
    /// The agent the request's headers authenticate, or `None` to refuse it.
    fn authorize(&self, headers: &HeaderMap) -> Option<AgentIdentity>;
}

/// One shared bearer token (`Authorization: Bearer <token>`), compared in constant time.
/// Every request carrying it is the agent named at construction.
pub struct BearerToken {
    token: SecretString,
    agent: String,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &"[redacted]")
            .field("agent", &self.agent)
            .finish()
    }
}

impl BearerToken {
    /// Accepts `token`, as agent `agent`.
    pub fn new(token: impl Into<String>, agent: impl Into<String>) -> Self {
        BearerToken {
            token: SecretString::from(token.into()),
            agent: agent.into(),
        }
    }

    /// Whether `candidate` is the token (constant time in its content).
    fn matches(&self, candidate: &str) -> bool {
        let expected = self.token.expose_secret().as_bytes();
        !expected.is_empty() && bool::from(expected.ct_eq(candidate.as_bytes()))
    }
}

impl AgentAuth for BearerToken {
    fn authorize(&self, headers: &HeaderMap) -> Option<AgentIdentity> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") && self.matches(token.trim()))
            .then(|| AgentIdentity(self.agent.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let auth = BearerToken::new("s3cret-token", "desk");
        assert_eq!(
            auth.authorize(&headers("Bearer s3cret-token")),
            Some(AgentIdentity("desk".into()))
        );
        assert_eq!(
            auth.authorize(&headers("bearer s3cret-token")).map(|a| a.0),
            Some("desk".into())
        );
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
            "Bearer",
            "s3cret-token",
        ] {
            assert_eq!(auth.authorize(&headers(wrong)), None, "{wrong}");
        }
        assert_eq!(auth.authorize(&HeaderMap::new()), None);
        assert_eq!(
            BearerToken::new("", "x").authorize(&headers("Bearer ")),
            None
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
