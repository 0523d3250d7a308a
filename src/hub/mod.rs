//! The [`Hub`]: the one place that decides where each inbound event goes.
//!
//! | event | goes to |
//! |---|---|
//! | referral (an m.me ref, or Get Started with one) | identity: [`Connector::on_referral`], then the confirmation message; a link that would move history is asked about first ([`identity::confirm`](crate::identity::confirm)): the question goes out with signed Yes / No choices |
//! | the answer to such a question | identity: [`Connector::on_answer`], then the confirmation message after a Yes |
//! | a message of a linked contact (or of one just auto-registered) | the [`ProcessEngine`] first (an answer to a pending question; an answer that does not count is reported as [`Routed::AnswerIgnored`]), else the [`Inbox`] |
//! | a message of an unknown sender, auto-registration off | nowhere stored: the "please authorize" reply, and [`Routed::Unlinked`] for the host |
//! | delivery and read receipts | the [`Inbox`] (read watermarks cover everything sent before them) |
//! | echoes of the Page's own sends | ignored |
//! | reactions and edits of a known contact | the [`Inbox`], on the entry they target ([`Inbox::annotate`]; kept when they arrive before it) |
//! | an opt-in to notifications (Marketing Messages) | the contact's [`OptIns`] (an unknown sender is registered as for a message, or reported as [`Routed::Unlinked`]) |
//! | thread control passed to or taken from this app | the [`ThreadOwners`] store; a request for control is reported as [`Routed::ThreadControl`] |
//! | events of threads another app owns (standby) | the thread's owner noted in [`ThreadOwners`]; messages recorded in the inbox, never answered or offered to processes |
//! | kinds the crate does not interpret, plugin opt-ins | reported as [`Routed::Ignored`] with their kind |
//!
//! The Hub holds trait objects, so none of the host's types leak into it.
//!
//! # Nothing lost, nothing done twice
//!
//! The Hub's rule is *claim, route, commit*. [`Hub::handle`] verifies, parses and
//! drops already-handled events, then claims each new one for a lease ([`Webhook::receive`],
//! see [claims](crate::seen#claims-handled-once-even-by-handlers-racing-each-other)), routes
//! it, and marks it handled ([`Webhook::commit`]) only once it was routed:
//!
//! - **The same event delivered twice at once** (Meta redelivers while the first delivery is
//!   still being handled) is routed by whichever delivery claimed it; the other leaves it out,
//!   counts it in [`HubResponse::in_flight`] and answers 503, so that Meta delivers again
//!   later and finds it handled. Nothing is routed twice, and no delivery is acknowledged for
//!   an event that might still be lost.
//! - **Routing fails** (a store error): the answer is 500 so that Meta delivers the batch
//!   again; the events routed were committed and are dropped on redelivery; the failed event
//!   and its sender's later events are released ([`Webhook::release`]) and routed then, in
//!   order.
//!
//! # One sender in order, the senders side by side
//!
//! [`Hub::handle`] routes the events of one sender (one Page-scoped person) one after the
//! other, in request order, and the events of different senders concurrently: a batch of a
//! hundred people is routed while a store writes, so a store that batches concurrent writes
//! (the SQLite stores' group commit, a pool of PostgreSQL connections) records it in a few
//! transactions instead of a hundred. Nothing a sender does depends on another sender's
//! events; a connect token two people present at once is still used once (its claim).
//! - **The process crashes** between claiming and committing: the claims expire with the lease
//!   ([`WebhookBuilder::claim_lease`], 60 seconds by default), and Meta's redelivery routes
//!   the events. Routing is idempotent where such a redelivery could repeat work that was
//!   done before the crash: incoming messages are keyed by their transport id, a used connect
//!   token is recognised as "already linked", receipts only move statuses forward.
//!
//! The lease must outlast the routing of one batch: a claim that expires while its batch is
//! still routing lets an overlapping delivery route the same events.
//!
//! # Acknowledging first, routing in the background
//!
//! Meta waits 20 seconds for an answer. A normal batch routes in well under a millisecond per
//! event with in-memory stores; a host whose stores are slow can acknowledge first without
//! losing events:
//!
//! 1. call [`Webhook::receive`]: it verifies, parses, drops what was handled and claims the
//!    new events; if [`Batch::in_flight`] is not zero, the answer in step 2 is 503 instead
//!    of 200;
//! 2. write `batch.events` (they are `Serialize`) to a durable queue, then answer 200 (if the
//!    write fails, [`Webhook::release`] them and answer 500: nothing was acknowledged, Meta
//!    delivers again);
//! 3. a worker takes each event, calls [`Hub::route`], then [`Webhook::commit`], then removes it
//!    from the queue. A crash in between routes the event again, which routing tolerates as
//!    above. Set the claim lease to cover the queue's delay, or rely on that tolerance.
//!
//! [`Connector::on_referral`]: crate::identity::Connector::on_referral
//! [`Webhook::receive`]: crate::messenger::Webhook::receive
//! [`Webhook::commit`]: crate::messenger::Webhook::commit
//! [`Webhook::release`]: crate::messenger::Webhook::release
//! [`WebhookBuilder::claim_lease`]: crate::messenger::webhook::WebhookBuilder::claim_lease
//! [`Batch::in_flight`]: crate::messenger::Batch::in_flight

use std::{fmt, sync::Arc};

mod handle;

pub use handle::HubResponse;

use crate::{
    contact::{Channel, ContactId},
    error::StoreError,
    identity::{ConnectOutcome, Connector, Directory, Sender, confirm::is_link_answer},
    inbox::{Annotation, Change, DeliveryStatus, EntryId, Inbox, Incoming, StatusUpdate},
    message::{Inbound, InboundKind, Message, ThreadChange},
    optin::{OptInRecord, OptIns},
    process::{IgnoredAnswer, InstanceId, NoProcesses, Offer, ProcessEngine, ProcessError},
    threads::{ThreadOwner, ThreadOwners},
    transport::{SendContext, SharedTransport, TransportSet},
};

/// What routing did with one event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Routed {
    /// A referral: what identity made of it (linked, merged, refused, ...).
    Connected(ConnectOutcome),
    /// A running process consumed the event (an answer to its question).
    Process {
        /// The contact.
        contact: ContactId,
        /// The instance that consumed it.
        instance: InstanceId,
    },
    /// An answer to a flow's question that does not count (stale, forged, a double tap): it
    /// moved nothing and was not recorded anywhere.
    AnswerIgnored {
        /// The contact.
        contact: ContactId,
        /// The instance it named, when it named one authentically.
        instance: Option<InstanceId>,
        /// Why it does not count.
        reason: IgnoredAnswer,
    },
    /// The event became an inbox entry.
    Inbox {
        /// The contact (just auto-registered when `registered`).
        contact: ContactId,
        /// The entry.
        entry: EntryId,
        /// Whether the contact was created for this event.
        registered: bool,
    },
    /// A thread another app owns: recorded (when the contact is known), never answered.
    Standby {
        /// The entry, when one was recorded.
        entry: Option<EntryId>,
    },
    /// A reaction or an edit, recorded on the inbox entry it targets.
    Annotated {
        /// The contact who made it.
        contact: ContactId,
        /// The entry it targets, `None` when the target is not recorded (yet): it is kept,
        /// and shows on the entry once that is recorded.
        entry: Option<EntryId>,
    },
    /// An opt-in to notifications, kept in the contact's [`OptIns`].
    OptedIn {
        /// The contact (just auto-registered when `registered`).
        contact: ContactId,
        /// Whether the person stopped the notifications with it.
        stopped: bool,
        /// Whether the contact was created for this event.
        registered: bool,
    },
    /// Thread control changed hands, or another app asked for it.
    ThreadControl {
        /// What happened.
        change: ThreadChange,
        /// Who owns the thread now, when the event moved it (`None` for a request).
        owner: Option<ThreadOwner>,
    },
    /// Delivery or read receipts, applied to this many delivery records.
    Receipt {
        /// How many records moved forward.
        updated: usize,
    },
    /// An unknown sender wrote and auto-registration is off: nothing was stored; the event is
    /// the host's to keep or drop.
    Unlinked(Box<Inbound>),
    /// Nothing to do (an echo, a kind the crate does not interpret, a receipt of a stranger).
    Ignored {
        /// Why.
        reason: String,
    },
}

/// Why routing an event failed: the batch must be delivered again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A store failed.
    #[error("a store failed while routing")]
    Store(#[from] StoreError),
    /// The process engine failed.
    #[error("the process engine failed while routing")]
    Process(#[from] ProcessError),
}

/// Builds a [`Hub`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct HubBuilder {
    hub: Hub,
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("hub", &self.hub)
            .finish()
    }
}

impl HubBuilder {
    /// Offers messages of linked contacts to `engine` before the inbox (default: no processes).
    pub fn processes(mut self, engine: Arc<dyn ProcessEngine>) -> Self {
        self.hub.processes = engine;
        self
    }

    /// A transport the Hub may answer through (confirmations, "please authorize"), one per
    /// channel: a later one for the same channel replaces the earlier.
    pub fn transport(mut self, transport: SharedTransport) -> Self {
        self.hub.transports.insert(transport);
        self
    }

    /// Several transports at once (a [`TransportSet`], a `Vec`, ...), as
    /// [`transport`](Self::transport) one by one.
    pub fn transports(mut self, transports: impl IntoIterator<Item = SharedTransport>) -> Self {
        self.hub.transports.extend(transports);
        self
    }

    /// The message sent once an address is linked (none by default).
    pub fn confirmation(mut self, message: Message) -> Self {
        self.hub.confirmation = Some(message);
        self
    }

    /// The question asked before a link that moves history (see
    /// [`identity::confirm`](crate::identity::confirm)); `{account}` becomes the account's
    /// masked e-mail address (or "your account"). Default: `Connect this Messenger to
    /// {account}?`.
    pub fn link_question(mut self, template: impl Into<String>) -> Self {
        self.hub.link_question = template.into();
        self
    }

    /// The labels of the question's two choices (default `Yes` and `No`).
    pub fn link_answers(mut self, yes: impl Into<String>, no: impl Into<String>) -> Self {
        self.hub.link_answers = (yes.into(), no.into());
        self
    }

    /// The message sent to unknown senders when auto-registration is off: the connect
    /// instructions (none by default).
    pub fn please_authorize(mut self, message: Message) -> Self {
        self.hub.please_authorize = Some(message);
        self
    }

    /// Where notification opt-ins are kept (default with the `memory` feature: in memory, for
    /// the life of the Hub; without it, none, and opt-ins are logged and not kept). Give the
    /// durable store the campaign runner reads, e.g. `SqliteStores::opt_ins`.
    pub fn opt_ins(mut self, store: Arc<dyn OptIns>) -> Self {
        self.hub.opt_ins = Some(store);
        self
    }

    /// Where thread owners are kept (default with the `memory` feature: in memory, for the
    /// life of the Hub; without it, none, and thread changes are logged and not kept). Give
    /// the durable store the senders read, e.g. `SqliteStores::thread_owners`.
    pub fn thread_owners(mut self, store: Arc<dyn ThreadOwners>) -> Self {
        self.hub.threads = Some(store);
        self
    }

    /// The longest a confirmation or "please authorize" reply may take before routing goes on
    /// without it (default 3 s), so that a slow transport never holds the webhook past Meta's
    /// 20-second deadline. Give the reply transport few retries, too.
    pub fn reply_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.hub.reply_deadline = deadline;
        self
    }

    /// Builds the Hub.
    pub fn build(self) -> Hub {
        let mut hub = self.hub;
        // A merged contact's conversation and opt-ins follow it.
        let hook = FollowTheMerge {
            inbox: hub.inbox.clone(),
            opt_ins: hub.opt_ins.clone(),
        };
        hub.connector = hub.connector.with_merge_hook(Arc::new(hook));
        hub
    }
}

/// Routes inbound events; see the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use tidings::{
///     clock::SystemClock,
///     hub::{Hub, Routed},
///     identity::{ConnectPolicy, Connector},
///     inbox::Inbox,
///     messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
///     secrecy::SecretSlice,
///     store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
///     keys::SigningKey,
///     token::Tokens,
/// };
/// use hmac::{Hmac, Mac};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (directory, inbox) = (Arc::new(MemoryDirectory::new()), Arc::new(MemoryInbox::new()));
/// let seen = Arc::new(MemorySeenEvents::new());
/// let pages = Arc::new(StaticPages::new([PageConfig::new(
///     "104812345678901",
///     PageAccessToken::new("page-token"),
/// )]));
/// let webhook = Webhook::builder(
///     AppSecret::new("app-secret"),
///     VerifyToken::new("verify-me"),
///     pages,
///     seen.clone(),
///     Arc::new(MemoryLastInbound::new()),
/// )
/// .build();
/// let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32]))?);
/// let connector = Connector::builder(directory.clone(), seen, tokens)
///     .policy(ConnectPolicy::new().with_auto_register(true))
///     .build();
/// let hub = Hub::builder(connector, directory, inbox.clone()).build();
///
/// // What the host's HTTP route hands over: Meta's POST, as it came.
/// let body = r#"{"object":"page","entry":[{"id":"104812345678901","time":1764000000000,
///   "messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},
///   "timestamp":1764000000000,"message":{"mid":"m_1","text":"Is lesson 3 out?"}}]}]}"#;
/// let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"app-secret")?;
/// mac.update(body.as_bytes());
/// let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
/// let request = http::Request::post("/webhook")
///     .header("X-Hub-Signature-256", format!("sha256={digest}"))
///     .body(bytes::Bytes::from(body))?;
///
/// let handled = hub.handle(&webhook, &request).await;
/// assert_eq!(handled.response.status(), 200); // the answer to give Meta
/// let Some((_, Routed::Inbox { contact, .. })) = handled.routed.first() else {
///     panic!("a message goes to the inbox: {:?}", handled.routed);
/// };
/// // The unknown sender was auto-registered, and their message is in the support inbox.
/// assert_eq!(inbox.conversation(contact, 10).await?.len(), 1);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
pub struct Hub {
    connector: Connector,
    directory: Arc<dyn Directory>,
    inbox: Arc<dyn Inbox>,
    processes: Arc<dyn ProcessEngine>,
    opt_ins: Option<Arc<dyn OptIns>>,
    threads: Option<Arc<dyn ThreadOwners>>,
    transports: TransportSet,
    confirmation: Option<Message>,
    please_authorize: Option<Message>,
    link_question: String,
    link_answers: (String, String),
    reply_deadline: std::time::Duration,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("connector", &self.connector)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts building a Hub over the identity connector, the directory it uses, and the inbox.
    pub fn builder(
        connector: Connector,
        directory: Arc<dyn Directory>,
        inbox: Arc<dyn Inbox>,
    ) -> HubBuilder {
        HubBuilder {
            hub: Hub {
                connector,
                directory,
                inbox,
                processes: Arc::new(NoProcesses),
                opt_ins: default_opt_ins(),
                threads: default_thread_owners(),
                transports: TransportSet::new(),
                confirmation: None,
                please_authorize: None,
                link_question: "Connect this Messenger to {account}?".to_owned(),
                link_answers: ("Yes".to_owned(), "No".to_owned()),
                reply_deadline: std::time::Duration::from_secs(3),
            },
        }
    }

    /// Routes one event.
    pub async fn route(&self, event: &Inbound) -> Result<Routed, HubError> {
        match &event.kind {
            InboundKind::Echo { .. } => Ok(Routed::Ignored {
                reason: "echo of a message the Page sent".to_owned(),
            }),
            InboundKind::Referral { reference, .. } if !event.standby => {
                let outcome = self.connector.on_referral(&event.from, reference).await?;
                self.after_connect(event, &outcome).await;
                Ok(Routed::Connected(outcome))
            }
            InboundKind::Answer { payload, .. } if !event.standby && is_link_answer(payload) => {
                match self.connector.on_answer(&event.from, payload).await? {
                    Some(outcome) => {
                        self.after_connect(event, &outcome).await;
                        Ok(Routed::Connected(outcome))
                    }
                    None => self.route_message(event).await,
                }
            }
            InboundKind::Delivered {
                message_ids,
                watermark,
            } => {
                let mut updated = 0;
                for id in message_ids {
                    let update = StatusUpdate::Message {
                        channel: event.channel().clone(),
                        message_id: id.clone(),
                        status: DeliveryStatus::Delivered,
                    };
                    updated += self.inbox.update_status(&update).await?;
                }
                if let Some(watermark) = watermark {
                    updated += self
                        .up_to(event, *watermark, DeliveryStatus::Delivered)
                        .await?;
                }
                Ok(Routed::Receipt { updated })
            }
            InboundKind::Read {
                watermark,
                message_id,
            } => {
                let mut updated = 0;
                if let Some(id) = message_id {
                    let update = StatusUpdate::Message {
                        channel: event.channel().clone(),
                        message_id: id.clone(),
                        status: DeliveryStatus::Read,
                    };
                    updated += self.inbox.update_status(&update).await?;
                }
                if let Some(watermark) = watermark {
                    updated += self.up_to(event, *watermark, DeliveryStatus::Read).await?;
                }
                Ok(Routed::Receipt { updated })
            }
            InboundKind::ThreadControl {
                change, new_owner, ..
            } => {
                self.thread_control(event, *change, new_owner.as_deref())
                    .await
            }
            InboundKind::Reaction { .. } | InboundKind::Edit { .. } => self.annotate(event).await,
            InboundKind::OptIn {
                notifications: Some(optin),
                ..
            } => self.opt_in(event, optin).await,
            InboundKind::OptIn { reference, .. } => Ok(Routed::Ignored {
                reason: format!(
                    "plugin opt-in (ref {:?}): the crate does not interpret it",
                    reference.as_deref().unwrap_or("")
                ),
            }),
            _ if event.standby => {
                self.note_standby(event).await?;
                let entry = match (
                    incoming(event),
                    self.directory.find_by_address(&event.from).await?,
                ) {
                    (Some(entry), Some(contact)) => Some(
                        self.inbox
                            .record_incoming(&contact.id, event.at, entry)
                            .await?,
                    ),
                    _ => None,
                };
                Ok(Routed::Standby { entry })
            }
            _ if event.is_user_message() => self.route_message(event).await,
            InboundKind::Unknown { kind, .. } => Ok(Routed::Ignored {
                reason: format!("event kind {kind:?} is not interpreted"),
            }),
            _ => Ok(Routed::Ignored {
                reason: "nothing to do".to_owned(),
            }),
        }
    }

    async fn route_message(&self, event: &Inbound) -> Result<Routed, HubError> {
        let sender = self.connector.resolve_sender(&event.from).await?;
        let (contact, registered) = match sender {
            Sender::Known(c) => (c, false),
            Sender::Registered(c) => (c, true),
            _ => {
                self.reply(event, self.please_authorize.as_ref()).await;
                return Ok(Routed::Unlinked(Box::new(event.clone())));
            }
        };
        match self.processes.offer(&contact.id, event).await? {
            Offer::Consumed { instance } => {
                return Ok(Routed::Process {
                    contact: contact.id,
                    instance,
                });
            }
            Offer::Ignored { instance, reason } => {
                return Ok(Routed::AnswerIgnored {
                    contact: contact.id,
                    instance,
                    reason,
                });
            }
            _ => {}
        }
        let Some(entry) = incoming(event) else {
            return Ok(Routed::Ignored {
                reason: "no content to record".to_owned(),
            });
        };
        let entry = self
            .inbox
            .record_incoming(&contact.id, event.at, entry)
            .await?;
        Ok(Routed::Inbox {
            contact: contact.id,
            entry,
            registered,
        })
    }

    /// Tells the person what a connect did: the confirmation after a link, the question
    /// before one that moves history.
    async fn after_connect(&self, event: &Inbound, outcome: &ConnectOutcome) {
        match outcome {
            ConnectOutcome::Linked { .. }
            | ConnectOutcome::Relinked { .. }
            | ConnectOutcome::Merged { .. } => {
                self.reply(event, self.confirmation.as_ref()).await;
            }
            ConnectOutcome::Confirm(question) => {
                let account = question
                    .account_hint()
                    .unwrap_or_else(|| "your account".to_owned());
                let (yes, no) = &self.link_answers;
                let message = Message::builder(self.link_question.replace("{account}", &account))
                    .choice(yes, &question.yes)
                    .choice(no, &question.no)
                    .build();
                match message {
                    Ok(message) => self.reply(event, Some(&message)).await,
                    Err(e) => {
                        tracing::error!(error = %e, "the link question is not a valid message")
                    }
                }
            }
            ConnectOutcome::Refused(reason) => {
                tracing::warn!(from = %event.from, %reason, "connect refused");
            }
            _ => {}
        }
    }

    async fn thread_control(
        &self,
        event: &Inbound,
        change: ThreadChange,
        new_owner: Option<&str>,
    ) -> Result<Routed, HubError> {
        // Messenger sends a pass to the app that receives control, a take to the app that
        // lost it, and a request to the owner.
        let owner = match change {
            ThreadChange::Passed => Some(ThreadOwner::This),
            ThreadChange::Taken => Some(ThreadOwner::Other {
                app_id: new_owner.map(str::to_owned),
            }),
            _ => None,
        };
        if let Some(owner) = &owner {
            match &self.threads {
                Some(threads) => {
                    threads.set(&event.from, owner.clone(), event.at).await?;
                }
                None => tracing::warn!(
                    from = %event.from,
                    ?owner,
                    "thread owner not kept: the Hub has no ThreadOwners store"
                ),
            }
        } else {
            tracing::info!(from = %event.from, ?change, "another app asks for thread control");
        }
        Ok(Routed::ThreadControl { change, owner })
    }

    /// A standby event says another app owns the thread: noted, keeping the owner's app id
    /// when an earlier event named it.
    async fn note_standby(&self, event: &Inbound) -> Result<(), HubError> {
        let Some(threads) = &self.threads else {
            return Ok(());
        };
        // An earlier event than the stored one is refused by the store itself.
        let known = threads.get(&event.from).await?;
        if known.is_some_and(|s| matches!(s.owner, ThreadOwner::Other { .. })) {
            return Ok(());
        }
        threads
            .set(&event.from, ThreadOwner::Other { app_id: None }, event.at)
            .await?;
        Ok(())
    }

    async fn annotate(&self, event: &Inbound) -> Result<Routed, HubError> {
        let (message_id, change) = match &event.kind {
            InboundKind::Reaction {
                message_id,
                action,
                emoji,
                name,
            } => (
                message_id,
                Change::Reaction {
                    action: *action,
                    emoji: emoji.clone(),
                    name: name.clone(),
                },
            ),
            InboundKind::Edit {
                message_id,
                text,
                edit_count,
            } => (
                message_id,
                Change::Edit {
                    text: text.clone(),
                    edit_count: *edit_count,
                },
            ),
            _ => {
                return Ok(Routed::Ignored {
                    reason: "not a reaction or an edit".to_owned(),
                });
            }
        };
        if event.standby {
            self.note_standby(event).await?;
        }
        let Some(contact) = self.directory.find_by_address(&event.from).await? else {
            return Ok(Routed::Ignored {
                reason: "a reaction or an edit of an unknown sender".to_owned(),
            });
        };
        let annotation = Annotation::new(event.channel().clone(), message_id, event.at, change)
            .with_event_key(event.key.as_str());
        let entry = self.inbox.annotate(&contact.id, annotation).await?;
        Ok(Routed::Annotated {
            contact: contact.id,
            entry,
        })
    }

    async fn opt_in(
        &self,
        event: &Inbound,
        optin: &crate::message::NotificationOptIn,
    ) -> Result<Routed, HubError> {
        let (contact, registered) = match self.connector.resolve_sender(&event.from).await? {
            Sender::Known(c) => (c, false),
            Sender::Registered(c) => (c, true),
            _ => return Ok(Routed::Unlinked(Box::new(event.clone()))),
        };
        let record = OptInRecord::new(
            contact.id.clone(),
            event.channel().clone(),
            event.at,
            optin.clone(),
        );
        match &self.opt_ins {
            Some(opt_ins) => {
                opt_ins.record(record).await?;
            }
            None => tracing::warn!(
                contact = %record.contact,
                "opt-in not kept: the Hub has no OptIns store"
            ),
        }
        Ok(Routed::OptedIn {
            contact: contact.id,
            stopped: optin.is_stopped(),
            registered,
        })
    }

    async fn up_to(
        &self,
        event: &Inbound,
        watermark: crate::clock::Timestamp,
        status: DeliveryStatus,
    ) -> Result<usize, HubError> {
        let Some(contact) = self.directory.find_by_address(&event.from).await? else {
            return Ok(0);
        };
        let update = StatusUpdate::UpTo {
            contact: contact.id,
            channel: event.channel().clone(),
            watermark,
            status,
        };
        Ok(self.inbox.update_status(&update).await?)
    }

    /// Sends `message` back to the event's sender, if configured; a failure is logged, not
    /// fatal (the event itself was handled).
    async fn reply(&self, event: &Inbound, message: Option<&Message>) {
        let Some(message) = message else { return };
        let Some(transport) = self.transports.get(event.channel()) else {
            tracing::warn!(channel = %event.channel(), "no transport to reply through");
            return;
        };
        let ctx = SendContext::reply();
        let send = transport.send(&event.from, message, &ctx);
        #[cfg(feature = "messenger")]
        let result = match tokio::time::timeout(self.reply_deadline, send).await {
            Ok(result) => result,
            Err(_) => Err(crate::transport::DeliveryError::retryable(
                "reply timed out",
            )),
        };
        #[cfg(not(feature = "messenger"))]
        let result = send.await;
        if let Err(e) = result {
            tracing::warn!(to = %event.from, error = %e, "reply not delivered");
        }
    }
}

/// The opt-in store a Hub starts with: in memory with the `memory` feature, none otherwise.
fn default_opt_ins() -> Option<Arc<dyn OptIns>> {
    #[cfg(feature = "memory")]
    return Some(Arc::new(crate::store::memory::MemoryOptIns::new()));
    #[cfg(not(feature = "memory"))]
    None
}

/// The thread-owner store a Hub starts with: in memory with the `memory` feature, none
/// otherwise.
fn default_thread_owners() -> Option<Arc<dyn ThreadOwners>> {
    #[cfg(feature = "memory")]
    return Some(Arc::new(crate::store::memory::MemoryThreadOwners::new()));
    #[cfg(not(feature = "memory"))]
    None
}

/// Moves the inbox conversation and the opt-ins of a technical contact before it is merged.
struct FollowTheMerge {
    inbox: Arc<dyn Inbox>,
    opt_ins: Option<Arc<dyn OptIns>>,
}

#[async_trait::async_trait]
impl crate::identity::MergeHook for FollowTheMerge {
    async fn before_merge(
        &self,
        technical: &ContactId,
        into: &ContactId,
    ) -> Result<(), StoreError> {
        let moved = self.inbox.reassign(technical, into).await?;
        let opt_ins = match &self.opt_ins {
            Some(opt_ins) => opt_ins.reassign(technical, into).await?,
            None => 0,
        };
        tracing::info!(%technical, %into, moved, opt_ins, "conversation follows the merged contact");
        Ok(())
    }
}

/// The inbox entry for a message event. An empty transport id is no id: entries are
/// deduplicated by id, so one empty id shared by every message without one (a transport that
/// sent none) would keep only the first of them.
fn incoming(event: &Inbound) -> Option<Incoming> {
    let mut entry = incoming_entry(event)?;
    if entry.message_id.as_deref() == Some("") {
        entry.message_id = None;
    }
    // Routing it again (a crash before its commit) finds the entry by the event's key.
    Some(entry.with_event_key(event.key.as_str()))
}

fn incoming_entry(event: &Inbound) -> Option<Incoming> {
    let channel: Channel = event.channel().clone();
    Some(match &event.kind {
        InboundKind::Text { message_id, text } => Incoming::new(channel)
            .with_message_id(message_id)
            .with_text(text),
        InboundKind::Answer {
            message_id,
            payload,
            text,
        } => {
            let mut entry = Incoming::new(channel).with_choice(payload);
            if let Some(id) = message_id {
                entry = entry.with_message_id(id);
            }
            if let Some(text) = text {
                entry = entry.with_text(text);
            }
            entry
        }
        InboundKind::Attachments {
            message_id,
            text,
            attachments,
        } => {
            let mut entry = Incoming::new(channel).with_message_id(message_id);
            if let Some(text) = text {
                entry = entry.with_text(text);
            }
            attachments
                .iter()
                .cloned()
                .fold(entry, Incoming::with_attachment)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::Timestamp, contact::Address};

    #[test]
    fn messages_without_a_transport_id_are_not_keyed_by_an_empty_one() {
        let from = Address::messenger("page", "psid").unwrap();
        let text = Inbound::new(
            "k1",
            from.clone(),
            Timestamp::from_secs(1),
            InboundKind::Text {
                message_id: String::new(),
                text: "hello".into(),
            },
        );
        let answer = Inbound::new(
            "k2",
            from,
            Timestamp::from_secs(2),
            InboundKind::Answer {
                message_id: Some(String::new()),
                payload: "P".into(),
                text: None,
            },
        );
        for event in [text, answer] {
            let entry = incoming(&event).unwrap();
            assert_eq!(entry.message_id, None, "{event:?}");
        }
    }
}
