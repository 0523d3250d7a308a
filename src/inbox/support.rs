//! [`Support`]: the agent-facing side of the inbox.
//!
//! An agent opens a contact's conversation and sees which transports can reach the contact
//! ([`Support::transports_for`]: Messenger only when a Messenger address is linked, which is
//! when the "facebook" checkbox is shown; e-mail when the contact has a real address). The agent
//! ticks some and replies ([`Support::reply`]); each ticked transport is tried, and one outgoing
//! entry records, per transport, whether it was sent (with the transport's message ids),
//! refused before sending and why (Messenger's window closed, a message the transport cannot
//! render), or failed and why. A reply that no transport delivered is still recorded.
//!
//! Agent replies go with [`Intent::AgentReply`](crate::transport::Intent::AgentReply):
//! Messenger answers inside 24 hours, uses `HUMAN_AGENT` up to 7 days when the transport's policy
//! enables it, and refuses after that as "window closed", so the agent can tick e-mail instead.

use std::{fmt, sync::Arc};

use super::{DeliveryRecord, EntryId, Inbox, Outgoing};
use crate::{
    clock::{SharedClock, SystemClock},
    contact::{Address, Channel, Contact, ContactId},
    error::StoreError,
    identity::Directory,
    message::Message,
    transport::{DeliveryErrorKind, SendContext, SharedTransport, TransportSet},
};

/// One transport an agent may tick for a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportOption {
    /// The transport's channel.
    pub channel: Channel,
    /// The contact's address on it, when there is one: the checkbox is shown only then.
    pub address: Option<Address>,
}

impl TransportOption {
    /// Whether the checkbox is shown (the contact can be reached on this channel).
    pub fn available(&self) -> bool {
        self.address.is_some()
    }
}

/// An agent's reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// What to send (up to the transports' choices: at most 3 shown as buttons on Messenger).
    pub message: Message,
    /// The ticked transports, in the order to try them.
    pub channels: Vec<Channel>,
    /// The agent.
    pub author: Option<String>,
}

impl Reply {
    /// A reply of `message` through `channels`.
    pub fn new(message: Message, channels: impl IntoIterator<Item = Channel>) -> Self {
        Reply {
            message,
            channels: channels.into_iter().collect(),
            author: None,
        }
    }

    /// Names the agent.
    pub fn by(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }
}

/// What a reply did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyReport {
    /// The outgoing entry recorded for it.
    pub entry: EntryId,
    /// One record per ticked transport, in order.
    pub deliveries: Vec<DeliveryRecord>,
}

impl ReplyReport {
    /// Whether at least one transport sent it.
    pub fn delivered(&self) -> bool {
        self.deliveries.iter().any(|d| d.status.was_sent())
    }
}

/// The most choices an agent reply may offer: what Messenger shows as buttons.
pub const MAX_REPLY_CHOICES: usize = 3;

/// Why a reply could not be handled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupportError {
    /// The reply offers more choices than an agent reply may.
    #[error("an agent reply offers at most {MAX_REPLY_CHOICES} choices, this one {0}")]
    TooManyChoices(usize),
    /// The contact does not exist.
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    /// A store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// Replies to contacts through the transports agents tick; see the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use tidings::{
///     contact::{Address, Channel, NewContact},
///     identity::Directory,
///     inbox::{DeliveryStatus, Inbox, Reply, Support},
///     message::Message,
///     store::memory::{MemoryDirectory, MemoryInbox},
///     transport::stub::StubTransport,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let directory = Arc::new(MemoryDirectory::new());
/// let inbox = Arc::new(MemoryInbox::new());
/// let messenger = Arc::new(StubTransport::new(Channel::Messenger));
/// let email = Arc::new(StubTransport::new(Channel::Email));
/// let support = Support::builder(directory.clone(), inbox.clone())
///     .transport(messenger.clone())
///     .transport(email.clone())
///     .build();
/// let ann = directory
///     .create(
///         NewContact::new()
///             .with_email("ann@example.org")
///             .with_address(Address::messenger("104812345678901", "6789012345678901")?),
///     )
///     .await?;
///
/// // The reply box: a checkbox per transport that reaches Ann.
/// let boxes = support.transports_for(&ann.id).await?;
/// assert!(boxes.iter().all(|b| b.available()));
///
/// // The agent ticks both; each transport gets its own delivery record.
/// let reply = Reply::new(Message::text("Lesson 3 is open.")?, [Channel::Messenger, Channel::Email])
///     .by("agent-7");
/// let report = support.reply(&ann.id, reply).await?;
/// assert_eq!(report.deliveries.len(), 2);
/// assert!(report.deliveries.iter().all(|d| d.status == DeliveryStatus::Sent));
/// assert_eq!((messenger.sent().len(), email.sent().len()), (1, 1));
/// // One outgoing entry in Ann's conversation, with both records under it.
/// assert_eq!(inbox.conversation(&ann.id, 10).await?.len(), 1);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Support {
    directory: Arc<dyn Directory>,
    inbox: Arc<dyn Inbox>,
    transports: TransportSet,
    clock: SharedClock,
}

impl fmt::Debug for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Support")
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Support`]: `Support::builder(directory, inbox)`, then the transports agents may
/// tick and the clock, then [`build`](Self::build).
#[derive(Clone, Debug)]
pub struct SupportBuilder {
    support: Support,
}

impl SupportBuilder {
    /// Offers replies through `transport` (one per channel; a later one for the same channel
    /// replaces the earlier). The reply box lists them in this order.
    pub fn transport(mut self, transport: SharedTransport) -> Self {
        self.support.transports.insert(transport);
        self
    }

    /// Several transports at once (a [`TransportSet`], a `Vec`, ...), as
    /// [`transport`](Self::transport) one by one, in order.
    pub fn transports(mut self, transports: impl IntoIterator<Item = SharedTransport>) -> Self {
        self.support.transports.extend(transports);
        self
    }

    /// The clock for the times of replies and delivery records (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.support.clock = clock;
        self
    }

    /// The support service.
    pub fn build(self) -> Support {
        self.support
    }
}

impl Support {
    /// Starts building a support service over the directory and the inbox.
    pub fn builder(directory: Arc<dyn Directory>, inbox: Arc<dyn Inbox>) -> SupportBuilder {
        SupportBuilder {
            support: Support {
                directory,
                inbox,
                transports: TransportSet::new(),
                clock: SystemClock::shared(),
            },
        }
    }

    /// The transports an agent may tick for `contact`, in configuration order.
    pub async fn transports_for(
        &self,
        contact: &ContactId,
    ) -> Result<Vec<TransportOption>, SupportError> {
        let contact = self.contact(contact).await?;
        Ok(self
            .transports
            .iter()
            .map(|t| TransportOption {
                channel: t.channel().clone(),
                address: address_on(&contact, t.channel()),
            })
            .collect())
    }

    /// Sends `reply` through each ticked transport (once each) and records one outgoing entry
    /// with a delivery record per transport. A reply offering more than [`MAX_REPLY_CHOICES`]
    /// choices is refused before anything is sent.
    pub async fn reply(
        &self,
        contact: &ContactId,
        reply: Reply,
    ) -> Result<ReplyReport, SupportError> {
        let choices = reply.message.choices().len();
        if choices > MAX_REPLY_CHOICES {
            return Err(SupportError::TooManyChoices(choices));
        }
        let contact = self.contact(contact).await?;
        // The entry's time is when sending began: read receipts are watermarks in the
        // transport's time, and a message must not look later than its own receipt.
        let started = self.clock.now();
        let ctx = SendContext::agent_reply();
        let mut deliveries = Vec::with_capacity(reply.channels.len());
        let mut ticked: Vec<&Channel> = Vec::with_capacity(reply.channels.len());
        for channel in &reply.channels {
            if !ticked.contains(&channel) {
                ticked.push(channel);
            }
        }
        for channel in ticked {
            let record = match (self.transports.get(channel), address_on(&contact, channel)) {
                (None, _) => DeliveryRecord::refused(
                    channel.clone(),
                    format!("no {channel} transport is configured"),
                ),
                (_, None) => DeliveryRecord::refused(
                    channel.clone(),
                    format!("the contact has no {channel} address"),
                ),
                (Some(transport), Some(address)) => {
                    match transport.send(&address, &reply.message, &ctx).await {
                        Ok(receipt) => DeliveryRecord::sent(channel.clone(), receipt.message_ids),
                        Err(e)
                            if matches!(
                                e.kind(),
                                DeliveryErrorKind::WindowClosed | DeliveryErrorKind::InvalidMessage
                            ) =>
                        {
                            DeliveryRecord::refused(channel.clone(), e.to_string())
                        }
                        Err(e) => {
                            // What did go out (the first parts of a split message) stays on record,
                            // so its receipts still match.
                            let mut record = DeliveryRecord::failed(channel.clone(), e.to_string());
                            record.message_ids = e.sent_ids().to_vec();
                            record
                        }
                    }
                }
            };
            deliveries.push(record);
        }
        if !deliveries.iter().any(|d| d.status.was_sent()) {
            tracing::warn!(contact = %contact.id, "reply delivered by no transport; recorded as such");
        }
        let mut entry = Outgoing::new(reply.message);
        entry.author = reply.author;
        entry.deliveries = deliveries.clone();
        let id = self
            .inbox
            .record_outgoing(&contact.id, started, entry)
            .await?;
        Ok(ReplyReport {
            entry: id,
            deliveries,
        })
    }

    async fn contact(&self, id: &ContactId) -> Result<Contact, SupportError> {
        self.directory
            .get(id)
            .await?
            .ok_or_else(|| SupportError::UnknownContact(id.clone()))
    }
}

/// The contact's address on `channel` ([`Contact::reachable_on`]).
fn address_on(contact: &Contact, channel: &Channel) -> Option<Address> {
    contact.reachable_on(channel)
}
