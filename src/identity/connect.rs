//! Connecting a transport address to a platform account, and what to do with unknown senders.
//!
//! The platform shows a user a link carrying a signed, expiring, single-use "connect" token
//! that names them ([`Connector::connect_token`]; Messenger builds the `m.me` link from it).
//! When the transport reports the link's reference from an address, [`Connector::on_referral`]
//! links that address to the contact, or refuses with a typed [`Refusal`] and links nothing.
//!
//! - A token is single-use: its nonce is claimed in [`SeenEvents`] (key `connect:<nonce>`)
//!   until it expires, before anything else is decided, so a link works once, whoever uses it
//!   (a person already linked who taps a fresh link uses it up too). A redelivery of the event
//!   that used it is recognised (the address is linked to the token's contact) and answered as
//!   [`ConnectOutcome::AlreadyLinked`]. If linking fails after the claim, the claim is released
//!   so the redelivery can complete it.
//! - A token made for a scope (a Page) links only addresses of that scope.
//! - An address linked to contact A that presents a valid token for B is moved to B only when
//!   [`ConnectPolicy::relink`] allows it; the move is reported.
//! - An address linked to a *technical* contact (auto-registered) that presents a valid token
//!   for a real contact is merged into it through [`Directory::merge`], after a [`MergeHook`]
//!   (the Hub's moves the inbox conversation), and reported ([`ConnectOutcome::Merged`]).
//!
//! Senders without a linked contact and without a valid token are *unknown*: with
//! [`ConnectPolicy::auto_register`] on, [`Connector::resolve_sender`] creates a technical contact
//! whose e-mail address comes from [`ConnectPolicy::technical_email`] (idempotently: racing
//! events from one new sender create one contact); with it off, the sender stays unknown and
//! the caller asks them to authorize.

use std::{fmt, sync::Arc, time::Duration};

use serde_json::Value;

use super::{
    Directory,
    confirm::{ConfirmLinks, LinkChange, LinkQuestion},
};
use crate::{
    clock::{SharedClock, SystemClock},
    contact::{Address, Contact, ContactId, NewContact},
    error::StoreError,
    message::Reference,
    seen::SeenEvents,
    token::{Purpose, SignedToken, TokenError, Tokens},
};

pub use crate::contact::TECHNICAL_FIELD;

/// What a connector may do on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectPolicy {
    /// How long a connect token lives (default 15 minutes).
    pub token_ttl: Duration,
    /// Whether unknown senders get a technical contact (default off).
    pub auto_register: bool,
    /// The technical e-mail address of an auto-registered contact; `{id}` is the address's id
    /// (the PSID), `{scope}` its scope (the Page), `{channel}` its channel name. Default
    /// `fb.{id}@users.invalid` (`.invalid` can never receive mail).
    pub technical_email: String,
    /// Whether an address linked to one real contact may be moved to another by a valid token
    /// (default off).
    pub relink: bool,
    /// When the person is asked before a link is made (default: when it would move history).
    pub confirm: ConfirmLinks,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        ConnectPolicy {
            token_ttl: Duration::from_secs(15 * 60),
            auto_register: false,
            technical_email: "fb.{id}@users.invalid".to_owned(),
            relink: false,
            confirm: ConfirmLinks::default(),
        }
    }
}

impl ConnectPolicy {
    /// The default policy.
    pub fn new() -> Self {
        ConnectPolicy::default()
    }

    /// Sets the token lifetime.
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Turns auto-registration on or off.
    pub fn with_auto_register(mut self, on: bool) -> Self {
        self.auto_register = on;
        self
    }

    /// Sets the technical e-mail template.
    pub fn with_technical_email(mut self, template: impl Into<String>) -> Self {
        self.technical_email = template.into();
        self
    }

    /// Allows or forbids moving an address between real contacts.
    pub fn with_relink(mut self, allowed: bool) -> Self {
        self.relink = allowed;
        self
    }

    /// Sets when the person is asked before a link is made.
    pub fn with_confirm(mut self, confirm: ConfirmLinks) -> Self {
        self.confirm = confirm;
        self
    }

    /// The technical e-mail address for `address`.
    pub fn technical_email_for(&self, address: &Address) -> String {
        self.technical_email
            .replace("{id}", &sanitize(address.id()))
            .replace("{scope}", &sanitize(address.scope().unwrap_or("")))
            .replace("{channel}", &sanitize(&address.channel().to_string()))
    }
}

/// Keeps what is safe in an e-mail local part.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why a referral linked nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The reference is not a token this platform issued (a plain ref, garbage, an unknown key).
    #[error("the reference is not a connect token this platform issued")]
    NotIssued,
    /// The token was altered or forged.
    #[error("the token was altered or forged")]
    Tampered,
    /// The token's lifetime is over.
    #[error("the token has expired")]
    Expired,
    /// The token was made for something else (a login link, say).
    #[error("the token was made for another purpose")]
    WrongPurpose,
    /// The token was already used (by another address, or before).
    #[error("the token was already used")]
    AlreadyUsed,
    /// The token was made for another scope (another Page) than the address's.
    #[error("the token was made for another Page")]
    OtherScope,
    /// The token names a contact the directory does not have.
    #[error("the token names an unknown contact")]
    UnknownContact,
    /// An answer to a link question came from another address than the one asked.
    #[error("the answer came from another address than the one asked")]
    OtherAddress,
    /// The address is linked to another real contact and the policy forbids moving it.
    #[error("the address is linked to contact {current}, and relinking is not allowed")]
    LinkedElsewhere {
        /// The contact the address stays linked to.
        current: ContactId,
    },
}

impl From<&TokenError> for Refusal {
    fn from(e: &TokenError) -> Self {
        match e {
            TokenError::Tampered => Refusal::Tampered,
            TokenError::Expired { .. } => Refusal::Expired,
            TokenError::WrongPurpose { .. } => Refusal::WrongPurpose,
            _ => Refusal::NotIssued,
        }
    }
}

/// What a referral did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConnectOutcome {
    /// The address was linked to the contact.
    Linked {
        /// The contact.
        contact: Contact,
    },
    /// The address was already linked to the token's contact (a redelivery, a second tap).
    AlreadyLinked {
        /// The contact.
        contact: Contact,
    },
    /// The address moved from one real contact to another, as the policy allows.
    Relinked {
        /// The contact it was linked to.
        from: ContactId,
        /// The contact it is linked to now.
        contact: Contact,
    },
    /// The address belonged to a technical contact, which was merged into the real one: the
    /// host should move that contact's history (inbox, orders) to `contact`.
    Merged {
        /// The technical contact, retired.
        technical: ContactId,
        /// The real contact.
        contact: Contact,
    },
    /// Nothing was linked yet: the person must first answer the question (Yes / No) that the
    /// link would move their history or replace a link ([`ConfirmLinks`]). The Hub sends it;
    /// the answer comes back through [`Connector::on_answer`].
    Confirm(Box<LinkQuestion>),
    /// The person answered No to the link question: everything stays as it was.
    Declined {
        /// The contact the link named.
        contact: ContactId,
    },
    /// Nothing was linked.
    Refused(Refusal),
}

/// Who sent an event, as far as the directory knows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Sender {
    /// A linked contact.
    Known(Contact),
    /// A contact just created by auto-registration.
    Registered(Contact),
    /// Nobody: auto-registration is off.
    Unknown,
}

impl Sender {
    /// The contact, if there is one.
    pub fn contact(&self) -> Option<&Contact> {
        match self {
            Sender::Known(c) | Sender::Registered(c) => Some(c),
            Sender::Unknown => None,
        }
    }
}

/// Runs before a technical contact is merged into a real one, so that what the host keeps
/// per contact (the inbox conversation) can follow. It must be idempotent: after a failure the
/// merge is retried from the start. The Hub installs one that moves the inbox conversation.
#[async_trait::async_trait]
pub trait MergeHook: Send + Sync {
    /// Called before `technical` is merged into `into`.
    async fn before_merge(&self, technical: &ContactId, into: &ContactId)
    -> Result<(), StoreError>;
}

/// Links addresses to contacts; see the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use tidings::{
///     contact::{Address, NewContact},
///     identity::{ConnectOutcome, ConnectPolicy, Connector, Directory, Sender},
///     message::Reference,
///     secrecy::SecretSlice,
///     store::memory::{MemoryDirectory, MemorySeenEvents},
///     keys::SigningKey,
///     token::Tokens,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let directory = Arc::new(MemoryDirectory::new());
/// let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32]))?);
/// let connector = Connector::builder(directory.clone(), Arc::new(MemorySeenEvents::new()), tokens)
///     .policy(ConnectPolicy::new().with_auto_register(true))
///     .build();
///
/// // The platform shows Ann a link to m.me/<page>?ref=<token>; she taps it in Messenger.
/// let ann = directory.create(NewContact::new().with_email("ann@example.org")).await?;
/// let token = connector.connect_token(&ann.id, Some("104812345678901"))?;
/// let phone = Address::messenger("104812345678901", "6789012345678901")?;
/// let outcome = connector
///     .on_referral(&phone, &Reference::new(token.expose_secret()))
///     .await?;
/// assert!(matches!(outcome, ConnectOutcome::Linked { contact } if contact.id == ann.id));
/// // The link works once.
/// let again = connector
///     .on_referral(&phone, &Reference::new(token.expose_secret()))
///     .await?;
/// assert!(!matches!(again, ConnectOutcome::Linked { .. }));
///
/// // Someone who writes without a link is auto-registered under a technical e-mail.
/// let visitor = Address::messenger("104812345678901", "5550001")?;
/// let Sender::Registered(contact) = connector.resolve_sender(&visitor).await? else {
///     panic!("auto-registration is on");
/// };
/// assert!(contact.is_technical());
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Connector {
    pub(super) directory: Arc<dyn Directory>,
    pub(super) seen: Arc<dyn SeenEvents>,
    pub(super) tokens: Tokens,
    pub(super) clock: SharedClock,
    pub(super) policy: ConnectPolicy,
    merge_hook: Option<Arc<dyn MergeHook>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("tokens", &self.tokens)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Connector`]: `Connector::builder(directory, seen, tokens)`, then the policy,
/// the clock and a merge hook, then [`build`](Self::build).
#[derive(Clone, Debug)]
pub struct ConnectorBuilder {
    connector: Connector,
}

impl ConnectorBuilder {
    /// How connecting behaves (default: [`ConnectPolicy::new`]: 15-minute links, no
    /// auto-registration, no relinking).
    pub fn policy(mut self, policy: ConnectPolicy) -> Self {
        self.connector.policy = policy;
        self
    }

    /// The clock token lifetimes and link times are read from (default: the system clock).
    /// Give the [`Tokens`] the same clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.connector.clock = clock;
        self
    }

    /// Runs `hook` before each technical-to-real merge (default: none).
    pub fn merge_hook(mut self, hook: Arc<dyn MergeHook>) -> Self {
        self.connector.merge_hook = Some(hook);
        self
    }

    /// The connector.
    pub fn build(self) -> Connector {
        self.connector
    }
}

impl Connector {
    /// The connector with `hook` run before each merge instead of its own (the Hub's).
    pub(crate) fn with_merge_hook(mut self, hook: Arc<dyn MergeHook>) -> Self {
        self.merge_hook = Some(hook);
        self
    }

    /// Starts building a connector over the host's directory, with `seen` remembering used
    /// tokens and `tokens` signing and verifying connect links.
    pub fn builder(
        directory: Arc<dyn Directory>,
        seen: Arc<dyn SeenEvents>,
        tokens: Tokens,
    ) -> ConnectorBuilder {
        ConnectorBuilder {
            connector: Connector {
                directory,
                seen,
                tokens,
                clock: SystemClock::shared(),
                policy: ConnectPolicy::new(),
                merge_hook: None,
            },
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ConnectPolicy {
        &self.policy
    }

    /// A connect token naming `contact`, valid for the policy's lifetime. With a `scope` (for
    /// Messenger: the Page id) the token only links addresses of that scope, so a link made for
    /// one school's Page cannot connect a conversation with another's.
    pub fn connect_token(
        &self,
        contact: &ContactId,
        scope: Option<&str>,
    ) -> Result<SignedToken, TokenError> {
        self.tokens.issue_with_data(
            &Purpose::CONNECT,
            contact.as_str(),
            self.policy.token_ttl,
            scope.unwrap_or(""),
        )
    }

    /// Handles a referral carrying `reference` from `from`.
    ///
    /// The token is claimed (its nonce marked used) before anything is decided, so a link can
    /// be used once, whoever uses it; if applying the link then fails (a store error), the claim
    /// is released so that the redelivered event can complete it.
    pub async fn on_referral(
        &self,
        from: &Address,
        reference: &Reference,
    ) -> Result<ConnectOutcome, StoreError> {
        let claims = match self
            .tokens
            .verify(reference.expose_secret(), &Purpose::CONNECT)
        {
            Ok(claims) => claims,
            Err(e) => return Ok(ConnectOutcome::Refused(Refusal::from(&e))),
        };
        if !claims.data().is_empty() && from.scope() != Some(claims.data()) {
            return Ok(ConnectOutcome::Refused(Refusal::OtherScope));
        }
        let Ok(target_id) = ContactId::new(claims.subject()) else {
            return Ok(ConnectOutcome::Refused(Refusal::UnknownContact));
        };
        let Some(target) = self.directory.get(&target_id).await? else {
            return Ok(ConnectOutcome::Refused(Refusal::UnknownContact));
        };

        let now = self.clock.now();
        let ttl = claims
            .expires_at()
            .saturating_duration_since(now)
            .max(Duration::from_secs(1));
        let claim = format!("connect:{}", claims.nonce());
        // A link that would move history (or replace a link) is asked about first, unless
        // the token is used already; nothing is claimed until the answer.
        if !self.seen.is_seen(&claim, now).await? {
            let current = self.directory.find_by_address(from).await?;
            if let Some(change) = self.change_of(current.as_ref(), &target) {
                if self.policy.confirm.asks(&change) {
                    let question = self.question(from, &claims, target, change)?;
                    return Ok(ConnectOutcome::Confirm(Box::new(question)));
                }
            }
        }
        self.use_token(from, target, &claim, now, ttl).await
    }

    /// Claims the token's nonce and links, as [`on_referral`](Self::on_referral) without a
    /// question, or [`on_answer`](Self::on_answer) after a Yes.
    pub(super) async fn use_token(
        &self,
        from: &Address,
        target: Contact,
        claim: &str,
        now: crate::clock::Timestamp,
        ttl: Duration,
    ) -> Result<ConnectOutcome, StoreError> {
        // Claim the token first: of two uses, racing or not, only one gets past this point.
        let claimed = self.seen.mark_seen(claim, now, ttl).await?;
        let current = self.directory.find_by_address(from).await?;
        if !claimed {
            return Ok(match current {
                // The same person again, or a redelivery of the event that used it.
                Some(contact) if contact.id == target.id => {
                    ConnectOutcome::AlreadyLinked { contact }
                }
                _ => ConnectOutcome::Refused(Refusal::AlreadyUsed),
            });
        }
        match self.apply(from, target, current).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                if let Err(release) = self.seen.forget(claim).await {
                    tracing::error!(error = %release, "connect claim could not be released");
                }
                Err(e)
            }
        }
    }

    /// What linking `from` (linked to `current`) to `target` would change, if it links at
    /// all under the policy (`None`: already linked, or refused).
    fn change_of(&self, current: Option<&Contact>, target: &Contact) -> Option<LinkChange> {
        match current {
            None => Some(LinkChange::Link),
            Some(c) if c.id == target.id => None,
            Some(c) if is_technical(c) && !is_technical(target) => Some(LinkChange::Merge {
                technical: c.id.clone(),
            }),
            Some(_) if !self.policy.relink => None,
            Some(c) => Some(LinkChange::Relink { from: c.id.clone() }),
        }
    }

    /// Makes the link [`change_of`](Self::change_of) decides on.
    async fn apply(
        &self,
        from: &Address,
        target: Contact,
        current: Option<Contact>,
    ) -> Result<ConnectOutcome, StoreError> {
        let Some(change) = self.change_of(current.as_ref(), &target) else {
            return Ok(match current {
                Some(contact) if contact.id == target.id => {
                    ConnectOutcome::AlreadyLinked { contact }
                }
                // Linked to another real contact, and the policy forbids moving it.
                _ => ConnectOutcome::Refused(Refusal::LinkedElsewhere {
                    current: current.map_or(target.id, |c| c.id),
                }),
            });
        };
        match change {
            LinkChange::Link => {
                self.directory.link(&target.id, from).await?;
                Ok(ConnectOutcome::Linked {
                    contact: self.reload(target).await?,
                })
            }
            LinkChange::Merge { technical } => {
                if let Some(hook) = &self.merge_hook {
                    hook.before_merge(&technical, &target.id).await?;
                }
                let merged = self.directory.merge(&technical, &target.id).await?;
                tracing::info!(%technical, contact = %target.id, "technical contact merged into a real one");
                Ok(ConnectOutcome::Merged {
                    technical,
                    contact: merged,
                })
            }
            LinkChange::Relink { from: previous } => {
                self.directory.unlink(from).await?;
                self.directory.link(&target.id, from).await?;
                tracing::info!(from = %previous, to = %target.id, "address relinked");
                Ok(ConnectOutcome::Relinked {
                    from: previous,
                    contact: self.reload(target).await?,
                })
            }
        }
    }

    /// Finds the contact of `from`, creating a technical one if the policy says so.
    pub async fn resolve_sender(&self, from: &Address) -> Result<Sender, StoreError> {
        if let Some(contact) = self.directory.find_by_address(from).await? {
            return Ok(Sender::Known(contact));
        }
        if !self.policy.auto_register {
            return Ok(Sender::Unknown);
        }
        let new = NewContact::new()
            .with_email(self.policy.technical_email_for(from))
            .with_field(TECHNICAL_FIELD, Value::Bool(true))
            .with_address(from.clone());
        match self.directory.create(new).await {
            Ok(contact) => Ok(Sender::Registered(contact)),
            // Another event from the same new sender created it first.
            Err(e) if e.is_conflict() => match self.directory.find_by_address(from).await? {
                Some(contact) => Ok(Sender::Known(contact)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The contact as stored now (after a link), or `fallback` if it vanished meanwhile.
    async fn reload(&self, fallback: Contact) -> Result<Contact, StoreError> {
        Ok(self.directory.get(&fallback.id).await?.unwrap_or(fallback))
    }
}

/// Whether `contact` was created by auto-registration ([`Contact::is_technical`]).
pub fn is_technical(contact: &Contact) -> bool {
    contact.is_technical()
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use secrecy::SecretSlice;

    use super::*;
    use crate::{
        keys::SigningKey,
        store::memory::{MemoryDirectory, MemorySeenEvents},
    };

    const SECRET_BYTE: u8 = 0x5a;

    fn connector(policy: ConnectPolicy) -> Connector {
        connector_over(Arc::new(MemoryDirectory::new()), policy)
    }

    fn connector_over(directory: Arc<dyn Directory>, policy: ConnectPolicy) -> Connector {
        let key = SigningKey::new(6, SecretSlice::from(vec![SECRET_BYTE; 32])).unwrap();
        Connector::builder(
            directory,
            Arc::new(MemorySeenEvents::new()),
            Tokens::new(key),
        )
        .policy(policy)
        .build()
    }

    #[test]
    fn a_sender_has_a_contact_unless_unknown() {
        let ann = Contact::new(ContactId::new("ann").unwrap());
        assert_eq!(Sender::Known(ann.clone()).contact(), Some(&ann));
        assert_eq!(Sender::Registered(ann.clone()).contact(), Some(&ann));
        assert_eq!(Sender::Unknown.contact(), None);
    }

    /// What the host configured is what the connector reports, and its Debug output shows the
    /// policy and the key id but never the key.
    #[test]
    fn the_connector_reports_its_policy_and_debug_hides_the_key() {
        let policy = ConnectPolicy::default()
            .with_token_ttl(Duration::from_secs(120))
            .with_technical_email("tech+{id}@school.invalid");
        let connector = connector(policy.clone());
        assert_eq!(connector.policy().token_ttl, Duration::from_secs(120));
        assert_eq!(
            connector.policy().technical_email,
            "tech+{id}@school.invalid"
        );
        let shown = format!("{connector:?}");
        assert!(
            shown.contains("Connector") && shown.contains("tech+{id}@school.invalid"),
            "{shown}"
        );
        assert!(!shown.contains(&format!("{SECRET_BYTE}")), "{shown}");
        assert!(!shown.contains("90, 90"), "{shown}");
    }

    /// Someone already linked to a contact taps a new link for that same contact, on a host
    /// that allows relinking and asks before history moves: nothing is moved and nothing is
    /// asked, they are told they are already connected.
    #[tokio::test]
    async fn a_new_link_to_the_contact_already_linked_changes_nothing_even_with_relink_on() {
        let directory = Arc::new(MemoryDirectory::new());
        let ann = directory
            .create(NewContact::new().with_email("ann@example.org"))
            .await
            .unwrap();
        let from = Address::messenger("104812345678901", "6001").unwrap();
        directory.link(&ann.id, &from).await.unwrap();
        for confirm in [ConfirmLinks::Always, ConfirmLinks::WhenHistoryMoves] {
            let connector = connector_over(
                directory.clone(),
                ConnectPolicy::default()
                    .with_relink(true)
                    .with_confirm(confirm),
            );
            let token = connector.connect_token(&ann.id, None).unwrap();
            let outcome = connector
                .on_referral(&from, &Reference::new(token.expose_secret()))
                .await
                .unwrap();
            match outcome {
                ConnectOutcome::AlreadyLinked { contact } => assert_eq!(contact.id, ann.id),
                other => panic!("{confirm:?}: {other:?}"),
            }
        }
        let linked = directory.find_by_address(&from).await.unwrap().unwrap();
        assert_eq!(linked.id, ann.id);
    }
}
