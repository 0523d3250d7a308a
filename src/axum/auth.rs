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
/// Implement it over the host's sessions or tokens (it is async, so it may look a session
/// cookie up in the host's store); [`BearerToken`] is a shared secret. A host that guards
/// with its own tower layer as well can wrap [`AgentApi::router`](super::AgentApi::router) in
/// it: the layer runs first.
///
/// ```
/// use tidings::axum::{AgentAuth, AgentIdentity};
/// use axum::http::{HeaderMap, header::COOKIE};
///
/// /// Agents signed in to the host's admin, by session cookie.
/// struct Sessions;
///
/// #[async_trait::async_trait]
/// impl AgentAuth for Sessions {
///     async fn authorize(&self, headers: &HeaderMap) -> Option<AgentIdentity> {
///         let cookie = headers.get(COOKIE)?.to_str().ok()?;
///         let session = cookie.split("; ").find_map(|c| c.strip_prefix("admin_session="))?;
///         // The host's session store would be asked here.
///         (session == "valid").then(|| AgentIdentity("agent-ann".into()))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait AgentAuth: Send + Sync + 'static {
    /// The agent the request's headers authenticate, or `None` to refuse it.
    async fn authorize(&self, headers: &HeaderMap) -> Option<AgentIdentity>;
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

impl BearerToken {
    /// The agent `headers` authenticate.
    fn check(&self, headers: &HeaderMap) -> Option<AgentIdentity> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") && self.matches(token.trim()))
            .then(|| AgentIdentity(self.agent.clone()))
    }
}

#[async_trait::async_trait]
impl AgentAuth for BearerToken {
    async fn authorize(&self, headers: &HeaderMap) -> Option<AgentIdentity> {
        self.check(headers)
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
            auth.check(&headers("Bearer s3cret-token")),
            Some(AgentIdentity("desk".into()))
        );
        assert_eq!(
            auth.check(&headers("bearer s3cret-token")).map(|a| a.0),
            Some("desk".into())
        );
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
            "Bearer",
            "s3cret-token",
        ] {
            assert_eq!(auth.check(&headers(wrong)), None, "{wrong}");
        }
        assert_eq!(auth.check(&HeaderMap::new()), None);
        assert_eq!(BearerToken::new("", "x").check(&headers("Bearer ")), None);
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
