//! Login links ("authorize on click"): links in a campaign that log the recipient in.
//!
//! When a campaign asks for it, each link to an allowed host in the rendered text (and each
//! URL button) is rewritten to the host's login endpoint:
//!
//! `https://school.example/login?t=<token>&to=<target>`
//!
//! The token is a [`token`](crate::token) of purpose `login` for the contact, carrying the
//! campaign and a hash of the target URL, valid for [`DEFAULT_TTL`] unless configured. The
//! host's endpoint hands the query to [`LoginLinks::verify_query`] (or the two parameters to
//! [`LoginLinks::verify`]), gets the contact and the target back, starts a session and
//! redirects, or gets a typed [`LoginRefusal`]: malformed, tampered, expired, wrong purpose,
//! target not matching the token, target host not allowed, already used.
//!
//! Links to hosts outside the allowed list are left as they are, and a target outside the list
//! is refused at verification too, so the endpoint can never become an open redirect. Only
//! `https` targets qualify unless [`allow_http`](LoginLinks::allow_http) is set (a fresh session
//! should not be sent on to a plain-HTTP page). With [`single_use`](LoginLinks::single_use),
//! each token logs in once: its nonce is claimed in a [`SeenEvents`] store until the token
//! expires.
//!
//! # Link previews and scanners
//!
//! Messenger's link previews and e-mail security scanners fetch the URLs in a message before
//! the person clicks. A login endpoint that starts a session on `GET` would log the crawler in
//! (and, with single use, spend the token before the person clicks). Have the endpoint answer a
//! `GET` with a small page whose button (a `POST`, or a script-free form) calls
//! [`verify`](LoginLinks::verify) and starts the session, and send `Referrer-Policy:
//! no-referrer` so the token does not leak to the target.
//!
//! ```
//! use std::time::Duration;
//! use tidings::{
//!     contact::ContactId,
//!     newsletter::{CampaignId, login::LoginLinks},
//!     secrecy::SecretSlice,
//!     keys::SigningKey,
//!     token::Tokens,
//! };
//! use url::Url;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32]))?);
//! let links = LoginLinks::new(tokens, Url::parse("https://school.example/login")?)?
//!     .ttl(Duration::from_secs(3 * 24 * 3600));
//!
//! let ann = ContactId::new("c1")?;
//! let campaign = CampaignId::new("spring-sale")?;
//! let text = links.rewrite_text(
//!     "New lesson: https://school.example/lessons/4 (and https://youtube.com/x)",
//!     &ann,
//!     &campaign,
//! )?;
//! assert!(text.contains("https://school.example/login?t="));
//! assert!(text.contains("(and https://youtube.com/x)"), "other hosts are left alone");
//!
//! // The host's login endpoint:
//! let link = Url::parse(text.split_whitespace().nth(2).ok_or("no link")?)?;
//! let login = links.verify_query(link.query().unwrap_or("")).await?;
//! assert_eq!(login.contact, ann);
//! assert_eq!(login.target.as_str(), "https://school.example/lessons/4");
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use linkify::{LinkFinder, LinkKind};
use sha2::{Digest, Sha256};
use url::Url;

use super::CampaignId;
use crate::{
    clock::{SharedClock, SystemClock, Timestamp},
    contact::ContactId,
    error::StoreError,
    seen::SeenEvents,
    token::{Purpose, TokenError, Tokens},
};

/// How long a login link works unless configured: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The query parameter holding the token.
pub const TOKEN_PARAM: &str = "t";

/// The query parameter holding the target URL.
pub const TARGET_PARAM: &str = "to";

/// Bytes of the target's SHA-256 kept in the token: enough to bind it, short enough for links.
const TARGET_HASH_LEN: usize = 16;

/// Why login links could not be set up or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginLinkError {
    /// The login endpoint is not an absolute `http`/`https` URL with a host.
    #[error("login endpoint must be an absolute http(s) URL with a host: {0}")]
    InvalidEndpoint(String),
    /// The target's host is not in the allowed list; such links are never rewritten.
    #[error("host of {0} is not allowed for login links")]
    HostNotAllowed(String),
    /// The token could not be made (subject or data too long, no randomness).
    #[error("login token could not be made")]
    Token(#[from] TokenError),
}

/// Why a login link was refused at the host's endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginRefusal {
    /// The token or the query is missing or not a login token's shape.
    #[error("malformed login link")]
    Malformed,
    /// The token was changed or forged (or signed with a key no longer held).
    #[error("login token tampered or forged")]
    Tampered,
    /// The token's lifetime is over.
    #[error("login link expired at {expired_at}")]
    Expired {
        /// When it expired.
        expired_at: Timestamp,
    },
    /// The token was made for something else than logging in.
    #[error("token was not made for login links")]
    WrongPurpose,
    /// The target in the link is not the one the token was made for.
    #[error("login link target does not match its token")]
    TargetMismatch,
    /// The target's host is not (or no longer) allowed.
    #[error("login link target host is not allowed")]
    TargetNotAllowed,
    /// The link is single-use and was used.
    #[error("login link already used")]
    AlreadyUsed,
    /// The single-use store failed; try again.
    #[error("login link check failed in the store")]
    Store(#[from] StoreError),
}

impl From<TokenError> for LoginRefusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired { expired_at } => LoginRefusal::Expired { expired_at },
            TokenError::WrongPurpose { .. } => LoginRefusal::WrongPurpose,
            TokenError::Tampered | TokenError::UnknownKey(_) => LoginRefusal::Tampered,
            _ => LoginRefusal::Malformed,
        }
    }
}

/// A verified login link: who clicked, from which campaign, and where to send them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The contact to log in.
    pub contact: ContactId,
    /// The campaign whose message carried the link.
    pub campaign: CampaignId,
    /// Where to redirect after logging in.
    pub target: Url,
}

/// Makes and verifies login links; see the [module docs](self).
#[derive(Clone)]
pub struct LoginLinks {
    tokens: Tokens,
    endpoint: Url,
    allowed_hosts: Vec<String>,
    ttl: Duration,
    single_use: Option<Arc<dyn SeenEvents>>,
    clock: SharedClock,
    finder: Arc<LinkFinder>,
    allow_http: bool,
}

impl fmt::Debug for LoginLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLinks")
            .field("endpoint", &self.endpoint.as_str())
            .field("allowed_hosts", &self.allowed_hosts)
            .field("ttl", &self.ttl)
            .field("single_use", &self.single_use.is_some())
            .finish_non_exhaustive()
    }
}

impl LoginLinks {
    /// Login links to `endpoint`, signed by `tokens`. Only links to the endpoint's own host are
    /// rewritten until more hosts are allowed with [`allow_host`](LoginLinks::allow_host).
    pub fn new(tokens: Tokens, endpoint: Url) -> Result<Self, LoginLinkError> {
        let host = match (endpoint.scheme(), endpoint.host_str()) {
            ("http" | "https", Some(host)) if !endpoint.cannot_be_a_base() => {
                host.to_ascii_lowercase()
            }
            _ => return Err(LoginLinkError::InvalidEndpoint(endpoint.to_string())),
        };
        let mut finder = LinkFinder::new();
        finder.kinds(&[LinkKind::Url]);
        Ok(LoginLinks {
            tokens,
            endpoint,
            allowed_hosts: vec![host],
            ttl: DEFAULT_TTL,
            single_use: None,
            clock: SystemClock::shared(),
            finder: Arc::new(finder),
            allow_http: false,
        })
    }

    /// Also rewrites links to `host` (exactly this host name; add subdomains one by one).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into().to_ascii_lowercase();
        if !self.allowed_hosts.contains(&host) {
            self.allowed_hosts.push(host);
        }
        self
    }

    /// Also rewrites (and accepts) `http` targets on allowed hosts; by default only `https`
    /// targets are (a test setup without TLS, say).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// How long links work (default [`DEFAULT_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Makes every link work once, remembering used tokens in `seen`.
    pub fn single_use(mut self, seen: Arc<dyn SeenEvents>) -> Self {
        self.single_use = Some(seen);
        self
    }

    /// The clock for expiry, set on the tokens too (default: the system clock here, and
    /// whatever clock `tokens` had).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.tokens = self.tokens.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Whether links to `url` may be rewritten: `https` (or `http` when
    /// [allowed](LoginLinks::allow_http)) to an allowed host.
    pub fn is_allowed(&self, url: &Url) -> bool {
        (url.scheme() == "https" || (self.allow_http && url.scheme() == "http"))
            && url.host_str().is_some_and(|h| {
                self.allowed_hosts
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(h))
            })
    }

    fn is_login_link(&self, url: &Url) -> bool {
        url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default()
            && url.path() == self.endpoint.path()
    }

    /// The login link that logs `contact` in and leads to `target`.
    pub fn link(
        &self,
        contact: &ContactId,
        campaign: &CampaignId,
        target: &Url,
    ) -> Result<Url, LoginLinkError> {
        if !self.is_allowed(target) {
            return Err(LoginLinkError::HostNotAllowed(target.to_string()));
        }
        let data = format!("{campaign}\n{}", target_hash(target));
        let token =
            self.tokens
                .issue_with_data(&Purpose::LOGIN, contact.as_str(), self.ttl, &data)?;
        let mut link = self.endpoint.clone();
        link.query_pairs_mut()
            .append_pair(TOKEN_PARAM, token.expose_secret())
            .append_pair(TARGET_PARAM, target.as_str());
        Ok(link)
    }

    /// Rewrites a link if it goes to an allowed host (and is not a login link already);
    /// returns it unchanged otherwise.
    pub fn rewrite_url(
        &self,
        url: &str,
        contact: &ContactId,
        campaign: &CampaignId,
    ) -> Result<String, LoginLinkError> {
        match Url::parse(url) {
            Ok(parsed) if self.is_allowed(&parsed) && !self.is_login_link(&parsed) => {
                Ok(self.link(contact, campaign, &parsed)?.into())
            }
            _ => Ok(url.to_owned()),
        }
    }

    /// Rewrites every link to an allowed host in `text`; the rest of the text is unchanged.
    pub fn rewrite_text(
        &self,
        text: &str,
        contact: &ContactId,
        campaign: &CampaignId,
    ) -> Result<String, LoginLinkError> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for found in self.finder.links(text) {
            let rewritten = self.rewrite_url(found.as_str(), contact, campaign)?;
            if rewritten != found.as_str() {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 256));
                out.push_str(&text[copied..found.start()]);
                out.push_str(&rewritten);
                copied = found.end();
            }
        }
        Ok(match out {
            Some(mut out) => {
                out.push_str(&text[copied..]);
                out
            }
            None => text.to_owned(),
        })
    }

    /// Verifies the query string of a request to the login endpoint (`t=...&to=...`).
    pub async fn verify_query(&self, query: &str) -> Result<Login, LoginRefusal> {
        let mut token: Option<Cow<'_, str>> = None;
        let mut target: Option<Cow<'_, str>> = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                TOKEN_PARAM => &mut token,
                TARGET_PARAM => &mut target,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(LoginRefusal::Malformed);
            }
        }
        match (token, target) {
            (Some(token), Some(target)) => self.verify(&token, &target).await,
            _ => Err(LoginRefusal::Malformed),
        }
    }

    /// Verifies a login link's token and target; see the [module docs](self).
    pub async fn verify(&self, token: &str, target: &str) -> Result<Login, LoginRefusal> {
        let claims = self.tokens.verify(token, &Purpose::LOGIN)?;
        let (campaign, hash) = claims
            .data()
            .rsplit_once('\n')
            .ok_or(LoginRefusal::Malformed)?;
        let campaign = CampaignId::new(campaign).map_err(|_| LoginRefusal::Malformed)?;
        let contact = ContactId::new(claims.subject()).map_err(|_| LoginRefusal::Malformed)?;
        let target = Url::parse(target).map_err(|_| LoginRefusal::TargetMismatch)?;
        // Both sides are public (the token is already authenticated): no constant time needed.
        if target_hash(&target) != hash {
            return Err(LoginRefusal::TargetMismatch);
        }
        if !self.is_allowed(&target) {
            return Err(LoginRefusal::TargetNotAllowed);
        }
        if let Some(seen) = &self.single_use {
            let now = self.clock.now();
            let left = Duration::from_millis(
                u64::try_from(claims.expires_at().as_millis() - now.as_millis()).unwrap_or(0),
            );
            let key = format!(
                "login:{}",
                URL_SAFE_NO_PAD.encode(claims.nonce().as_bytes())
            );
            // Kept a minute past expiry so clock skew cannot revive it.
            if !seen
                .mark_seen(&key, now, left + Duration::from_secs(60))
                .await?
            {
                return Err(LoginRefusal::AlreadyUsed);
            }
        }
        Ok(Login {
            contact,
            campaign,
            target,
        })
    }
}

fn target_hash(target: &Url) -> String {
    let digest = Sha256::digest(target.as_str().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..TARGET_HASH_LEN])
}

#[cfg(test)]
mod tests {
    use secrecy::SecretSlice;

    use super::*;
    use crate::{
        clock::ManualClock, keys::SigningKey, store::memory::MemorySeenEvents, token::Tokens,
    };

    fn tokens(secret: u8) -> Tokens {
        Tokens::new(SigningKey::new(1, SecretSlice::from(vec![secret; 32])).unwrap())
    }

    fn setup() -> (LoginLinks, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
        let links = LoginLinks::new(
            tokens(7),
            Url::parse("https://school.example/auth/login").unwrap(),
        )
        .unwrap()
        .allow_host("Cdn.School.Example")
        .clock(clock.shared());
        (links, clock)
    }

    fn ids() -> (ContactId, CampaignId) {
        (
            ContactId::new("user-42").unwrap(),
            CampaignId::new("spring").unwrap(),
        )
    }

    fn params(link: &Url) -> (String, String) {
        let get = |name: &str| {
            link.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        (get(TOKEN_PARAM), get(TARGET_PARAM))
    }

    #[tokio::test]
    async fn a_link_logs_its_contact_in_and_leads_to_its_target() {
        let (links, _) = setup();
        let (contact, campaign) = ids();
        let target = Url::parse("https://school.example/lessons/4?tab=video#top").unwrap();
        let link = links.link(&contact, &campaign, &target).unwrap();
        assert!(
            link.as_str()
                .starts_with("https://school.example/auth/login?t=")
        );
        assert!(link.as_str().len() < 400, "{}", link.as_str().len());
        let login = links.verify_query(link.query().unwrap()).await.unwrap();
        assert_eq!(
            login,
            Login {
                contact,
                campaign,
                target
            }
        );
    }

    #[tokio::test]
    async fn every_refusal_has_its_own_variant() {
        let (links, clock) = setup();
        let (contact, campaign) = ids();
        let target = Url::parse("https://school.example/lessons/4").unwrap();
        let link = links.link(&contact, &campaign, &target).unwrap();
        let (token, to) = params(&link);

        // Tampered: one character of the token changed.
        let mut bytes = token.clone().into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            links.verify(&tampered, &to).await,
            Err(LoginRefusal::Tampered)
        ));
        // Signed by someone else.
        let (forger, _) = {
            let l = LoginLinks::new(
                tokens(9),
                Url::parse("https://school.example/auth/login").unwrap(),
            )
            .unwrap();
            (l, ())
        };
        let forged = forger.link(&contact, &campaign, &target).unwrap();
        assert!(matches!(
            links.verify_query(forged.query().unwrap()).await,
            Err(LoginRefusal::Tampered)
        ));
        // Another target than the token's.
        assert!(matches!(
            links.verify(&token, "https://school.example/admin").await,
            Err(LoginRefusal::TargetMismatch)
        ));
        assert!(matches!(
            links.verify(&token, "not a url").await,
            Err(LoginRefusal::TargetMismatch)
        ));
        // Malformed queries.
        for query in [
            "",
            "t=abc",
            "to=https%3A%2F%2Fschool.example%2F",
            "t=a&t=b&to=x",
        ] {
            assert!(
                matches!(
                    links.verify_query(query).await,
                    Err(LoginRefusal::Malformed)
                ),
                "{query}"
            );
        }
        assert!(matches!(
            links.verify("!!!", &to).await,
            Err(LoginRefusal::Malformed)
        ));
        // A token of another purpose.
        let connect = tokens(7)
            .issue(&Purpose::CONNECT, "user-42", Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            links.verify(connect.expose_secret(), &to).await,
            Err(LoginRefusal::WrongPurpose)
        ));
        // Expired.
        clock.advance(DEFAULT_TTL + Duration::from_secs(1));
        assert!(matches!(
            links.verify(&token, &to).await,
            Err(LoginRefusal::Expired { .. })
        ));
    }

    #[tokio::test]
    async fn a_host_no_longer_allowed_is_refused() {
        let (links, _) = setup();
        let (contact, campaign) = ids();
        let target = Url::parse("https://cdn.school.example/file.pdf").unwrap();
        let link = links.link(&contact, &campaign, &target).unwrap();
        let stricter = LoginLinks::new(
            tokens(7),
            Url::parse("https://school.example/auth/login").unwrap(),
        )
        .unwrap();
        assert!(matches!(
            stricter.verify_query(link.query().unwrap()).await,
            Err(LoginRefusal::TargetNotAllowed)
        ));
        assert!(links.verify_query(link.query().unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn single_use_links_work_once() {
        let (links, _) = setup();
        let links = links.single_use(Arc::new(MemorySeenEvents::new()));
        let (contact, campaign) = ids();
        let target = Url::parse("https://school.example/").unwrap();
        let link = links.link(&contact, &campaign, &target).unwrap();
        assert!(links.verify_query(link.query().unwrap()).await.is_ok());
        assert!(matches!(
            links.verify_query(link.query().unwrap()).await,
            Err(LoginRefusal::AlreadyUsed)
        ));
        // Another link of the same contact still works.
        let other = links.link(&contact, &campaign, &target).unwrap();
        assert!(links.verify_query(other.query().unwrap()).await.is_ok());
    }

    #[test]
    fn only_links_to_allowed_hosts_are_rewritten() {
        let (links, _) = setup();
        let (contact, campaign) = ids();
        let text = "Start: https://school.example/l/1. Slides: https://CDN.school.example/s.pdf, \
                    video https://youtube.com/watch?v=1 and mailto:help@school.example or \
                    ftp://school.example/x; evil https://school.example.evil.com/ and \
                    https://school.example/auth/login?t=old";
        let out = links.rewrite_text(text, &contact, &campaign).unwrap();
        let found: Vec<String> = LinkFinder::new()
            .kinds(&[LinkKind::Url])
            .links(&out)
            .map(|l| l.as_str().to_owned())
            .collect();
        let login = |u: &str| u.starts_with("https://school.example/auth/login?t=");
        assert!(
            login(&found[0]) && found[0].contains("to=https%3A%2F%2Fschool.example%2Fl%2F1"),
            "{out}"
        );
        assert!(login(&found[1]), "{out}");
        assert!(out.contains("https://youtube.com/watch?v=1"), "{out}");
        assert!(out.contains("ftp://school.example/x"), "{out}");
        let plain = links
            .rewrite_text("http://school.example/l/1", &contact, &campaign)
            .unwrap();
        assert_eq!(
            plain, "http://school.example/l/1",
            "http targets are left alone"
        );
        let links = links.allow_http(true);
        assert!(
            links
                .rewrite_text("http://school.example/l/1", &contact, &campaign)
                .unwrap()
                .starts_with("https://school.example/auth/login?t=")
        );
        assert!(out.contains("https://school.example.evil.com/"), "{out}");
        assert!(
            out.ends_with("https://school.example/auth/login?t=old"),
            "{out}"
        );
        assert!(
            out.starts_with("Start: ") && out.contains(". Slides: "),
            "{out}"
        );
        assert_eq!(
            links
                .rewrite_text("no links here", &contact, &campaign)
                .unwrap(),
            "no links here"
        );
        assert!(matches!(
            links.link(
                &contact,
                &campaign,
                &Url::parse("https://evil.example/").unwrap()
            ),
            Err(LoginLinkError::HostNotAllowed(_))
        ));
        assert!(matches!(
            LoginLinks::new(tokens(7), Url::parse("mailto:x@y.z").unwrap()),
            Err(LoginLinkError::InvalidEndpoint(_))
        ));
    }

    #[test]
    fn debug_shows_no_key() {
        let (links, _) = setup();
        let debug = format!("{links:?}");
        assert!(
            debug.contains("school.example") && !debug.contains("[7, 7"),
            "{debug}"
        );
    }
}
