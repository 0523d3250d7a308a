//! Connecting Messenger to accounts, auto-registration and routing, end to end over loopback:
//! a simulated user posts signed webhooks to an HTTP server hosting the Hub, and the Hub
//! answers through the Messenger transport to the fake Graph API.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, ContactId, NewContact},
    error::StoreError,
    hub::{Hub, Routed},
    identity::{
        ConfirmLinks, ConnectOutcome, ConnectPolicy, Connector, Directory, LinkChange, Refusal,
        Sender, connect::is_technical,
    },
    inbox::{Entry, EntryContent, EntryId, Inbox, Incoming, Outgoing, StatusUpdate},
    keys::SigningKey,
    message::Message,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    optin::OptIns,
    secrecy::SecretSlice,
    seen::{Claim, SeenEvents},
    store::memory::{
        MemoryDirectory, MemoryInbox, MemoryLastInbound, MemoryOptIns, MemorySeenEvents,
        MemoryThreadOwners,
    },
    testkit::{graph::FakeGraph, user::FakeUser},
    threads::{ThreadOwner, ThreadOwners},
    token::{Purpose, Tokens},
};

const PAGE: &str = "104812345678901";
const SECRET: &str = "hub-test-app-secret";

/// An inbox that takes `delay` for each incoming record, fails the `fail_at`-th (1-based) and
/// the first write of `fail_mid`, watches how many writes are in flight at once and logs the
/// order of the writes it made.
#[derive(Default)]
struct FlakyInbox {
    inner: MemoryInbox,
    calls: AtomicUsize,
    /// The call (1-based) that fails; 0 for none.
    fail_at: usize,
    /// The message id whose first write fails, if any.
    fail_mid: String,
    failed_mid: std::sync::atomic::AtomicBool,
    delay: Duration,
    /// Writes in flight now, and the most seen at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// (contact, message id) of each write, in the order they were made.
    written: std::sync::Mutex<Vec<(ContactId, String)>>,
}

#[async_trait]
impl Inbox for FlakyInbox {
    async fn annotate(
        &self,
        contact: &tidings::ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<tidings::inbox::EntryId>, tidings::StoreError> {
        self.inner.annotate(contact, annotation).await
    }

    async fn record_incoming(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Incoming,
    ) -> Result<EntryId, StoreError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mid = e.message_id.clone().unwrap_or_default();
        let fails_here = !self.fail_mid.is_empty()
            && mid == self.fail_mid
            && !self.failed_mid.swap(true, Ordering::SeqCst);
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at || fails_here {
            return Err(StoreError::backend(std::io::Error::other(
                "database unavailable",
            )));
        }
        self.written.lock().unwrap().push((c.clone(), mid));
        self.inner.record_incoming(c, at, e).await
    }
    async fn record_outgoing(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.inner.record_outgoing(c, at, e).await
    }
    async fn update_status(&self, u: &StatusUpdate) -> Result<usize, StoreError> {
        self.inner.update_status(u).await
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.inner.conversation(c, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.inner.reassign(from, into).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.inner.forget_contact(c).await
    }
    async fn conversations(
        &self,
        after: Option<&tidings::inbox::ConversationCursor>,
        limit: usize,
    ) -> Result<tidings::inbox::ConversationPage, tidings::StoreError> {
        self.inner.conversations(after, limit).await
    }
    async fn mark_read(
        &self,
        contact: &tidings::ContactId,
        up_to: tidings::Timestamp,
    ) -> Result<(), tidings::StoreError> {
        self.inner.mark_read(contact, up_to).await
    }
}

/// A seen store whose every write takes 30 ms, as a real database's can under load.
#[derive(Default)]
struct SlowSeen(MemorySeenEvents);

const SLOW_WRITE: Duration = Duration::from_millis(30);

#[async_trait]
impl SeenEvents for SlowSeen {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.0.is_seen(key, now).await
    }
    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.mark_seen(key, now, ttl).await
    }
    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.forget(key).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.0.purge_expired(now).await
    }
    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.claim(key, now, lease).await
    }
    async fn settle(&self, key: &str, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.settle(key, now, ttl).await
    }
    async fn claim_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.claim_many(keys, now, lease).await
    }
    async fn settle_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        tokio::time::sleep(SLOW_WRITE).await;
        self.0.settle_many(keys, now, ttl).await
    }
}

/// Records every event the Hub offers to processes; consumes none.
#[derive(Default)]
struct RecordingEngine {
    offered: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl tidings::process::ProcessEngine for RecordingEngine {
    async fn start(
        &self,
        flow: &tidings::process::FlowId,
        _: &ContactId,
    ) -> Result<tidings::process::InstanceId, tidings::process::ProcessError> {
        Err(tidings::process::ProcessError::UnknownFlow(flow.clone()))
    }
    async fn offer(
        &self,
        _: &ContactId,
        event: &tidings::Inbound,
    ) -> Result<tidings::process::Offer, tidings::process::ProcessError> {
        self.offered.lock().unwrap().push(event.key.clone());
        Ok(tidings::process::Offer::NotConsumed)
    }
}

impl RecordingEngine {
    fn times_offered(&self, mid: &str) -> usize {
        let key = format!("messenger:{mid}");
        self.offered
            .lock()
            .unwrap()
            .iter()
            .filter(|k| **k == key)
            .count()
    }
}

struct World {
    clock: ManualClock,
    graph: FakeGraph,
    directory: Arc<MemoryDirectory>,
    inbox: Arc<dyn Inbox>,
    connector: Connector,
    hub: Arc<Hub>,
    url: String,
    secret: AppSecret,
    webhook: Arc<Webhook>,
    engine: Arc<RecordingEngine>,
    opt_ins: Arc<MemoryOptIns>,
    threads: Arc<MemoryThreadOwners>,
    _server: tokio::task::JoinHandle<()>,
}

impl World {
    async fn new(policy: ConnectPolicy) -> World {
        World::with_inbox(policy, Arc::new(MemoryInbox::new())).await
    }

    async fn with_inbox(policy: ConnectPolicy, inbox: Arc<dyn Inbox>) -> World {
        World::with_stores(policy, inbox, Arc::new(MemorySeenEvents::new())).await
    }

    async fn with_stores(
        policy: ConnectPolicy,
        inbox: Arc<dyn Inbox>,
        seen: Arc<dyn SeenEvents>,
    ) -> World {
        let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
        let secret = AppSecret::new(SECRET);
        let graph = FakeGraph::builder()
            .page(PAGE, "page-token")
            .enforce_window(false)
            .clock(clock.shared())
            .start()
            .await
            .unwrap();
        let directory = Arc::new(MemoryDirectory::new());
        let last = Arc::new(MemoryLastInbound::new());
        let pages = Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("page-token"),
        )
        .with_username("school")]));
        let messenger = MessengerTransport::builder(pages.clone(), last.clone())
            .base_url(graph.base_url())
            .clock(clock.shared())
            .build()
            .unwrap();
        let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap())
            .with_clock(clock.shared());
        let engine = Arc::new(RecordingEngine::default());
        let opt_ins = Arc::new(MemoryOptIns::new());
        let threads = Arc::new(MemoryThreadOwners::new());
        let connector = Connector::builder(directory.clone(), seen.clone(), tokens)
            .clock(clock.shared())
            .policy(policy)
            .build();
        let hub = Arc::new(
            Hub::builder(connector.clone(), directory.clone(), inbox.clone())
                .processes(engine.clone())
                .opt_ins(opt_ins.clone())
                .thread_owners(threads.clone())
                .transport(Arc::new(messenger))
                .confirmation(
                    Message::text("Your Messenger is connected to your school account.").unwrap(),
                )
                .please_authorize(
                    Message::text(
                        "Please connect your account first: open the link in your profile.",
                    )
                    .unwrap(),
                )
                .build(),
        );
        let webhook = Arc::new(
            Webhook::builder(
                secret.clone(),
                VerifyToken::new("verify"),
                pages,
                seen,
                last,
            )
            .clock(clock.shared())
            .build(),
        );

        // The host's glue: an axum route that hands the request to the Hub.
        let app = axum::Router::new().route(
            "/webhook",
            axum::routing::any({
                let (hub, webhook) = (hub.clone(), webhook.clone());
                move |request: axum::extract::Request| {
                    let (hub, webhook) = (hub.clone(), webhook.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = axum::body::to_bytes(body, 2 * 1024 * 1024)
                            .await
                            .unwrap_or_default();
                        let handled = hub
                            .handle(&webhook, &http::Request::from_parts(parts, body))
                            .await;
                        handled.response.map(axum::body::Body::from)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        World {
            clock,
            graph,
            directory,
            inbox,
            connector,
            hub,
            url,
            secret,
            webhook,
            engine,
            opt_ins,
            threads,
            _server: server,
        }
    }

    async fn post(&self, body: &Value) -> u16 {
        FakeUser::post(&self.url, body, &self.secret)
            .await
            .unwrap()
            .0
    }

    fn user(&self, psid: &str) -> FakeUser {
        FakeUser::new(PAGE, psid)
    }

    fn address(&self, psid: &str) -> Address {
        Address::messenger(PAGE, psid).unwrap()
    }

    async fn contact(&self, email: &str) -> ContactId {
        self.directory
            .create(NewContact::new().with_email(email))
            .await
            .unwrap()
            .id
    }

    async fn owner(&self, psid: &str) -> Option<ContactId> {
        self.directory
            .find_by_address(&self.address(psid))
            .await
            .unwrap()
            .map(|c| c.id)
    }

    /// Hands `body`, signed, to the Hub directly (no HTTP), for what it routed.
    async fn deliver(&self, body: &Value) -> tidings::hub::HubResponse {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = http::Request::post("/webhook")
            .header("X-Hub-Signature-256", FakeUser::sign(&bytes, &self.secret))
            .body(Bytes::from(bytes))
            .unwrap();
        self.hub.handle(&self.webhook, &request).await
    }

    /// What the connector makes of `token` presented from `psid`.
    async fn refer(&self, psid: &str, token: &tidings::token::SignedToken) -> ConnectOutcome {
        let reference = tidings::message::Reference::new(token.expose_secret());
        self.connector
            .on_referral(&self.address(psid), &reference)
            .await
            .unwrap()
    }

    /// The payloads of the signed answers of the last link question sent: (Yes, No).
    fn link_answers(&self) -> (String, String) {
        fn collect(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        match v.as_str() {
                            Some(p) if k == "payload" && p.starts_with("tdc1.") => {
                                out.push(p.to_owned())
                            }
                            _ => collect(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        let sent = self.graph.sent();
        let question = sent.last().expect("a question was sent");
        let mut payloads = Vec::new();
        collect(&question.body, &mut payloads);
        assert_eq!(payloads.len(), 2, "Yes and No: {}", question.body);
        (payloads[0].clone(), payloads[1].clone())
    }

    fn texts_sent(&self) -> Vec<String> {
        self.graph
            .sent()
            .iter()
            .filter_map(|s| s.text().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn connecting_from_mobile_through_get_started_links_and_confirms() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let link = tidings::messenger::link::connect_link(
        &PageConfig::new(PAGE, PageAccessToken::new("t")).with_username("school"),
        &token,
    );
    assert!(link.starts_with("https://m.me/school?ref="));

    let body = w
        .user("111")
        .get_started_with_ref("m_gs", token.expose_secret(), w.clock.now());
    assert_eq!(w.post(&body).await, 200);
    assert_eq!(w.owner("111").await, Some(ann));
    assert_eq!(
        w.texts_sent(),
        ["Your Messenger is connected to your school account."]
    );
}

#[tokio::test]
async fn connecting_on_an_existing_thread_through_a_referral_links() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    assert_eq!(
        w.post(&w.user("222").referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );
    assert_eq!(w.owner("222").await, Some(ann.clone()));
    // She writes: it lands in her conversation.
    assert_eq!(
        w.post(&w.user("222").text("m_1", "Hello!", w.clock.now()))
            .await,
        200
    );
    let conversation = w.inbox.conversation(&ann, 10).await.unwrap();
    assert!(
        matches!(&conversation[0].content, EntryContent::Incoming(i) if i.text.as_deref() == Some("Hello!"))
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason_and_links_nothing() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let valid = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let from = w.address("333");

    let forger = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap())
        .with_clock(w.clock.shared());
    let forged = forger
        .issue(&Purpose::CONNECT, ann.as_str(), Duration::from_secs(900))
        .unwrap();
    let login = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap())
        .with_clock(w.clock.shared())
        .issue(&Purpose::LOGIN, ann.as_str(), Duration::from_secs(900))
        .unwrap();
    let mut tampered = valid.expose_secret().to_owned();
    // A middle character: always inside the signed bytes. (The last one may only carry base64
    // padding bits, and changing those makes the text malformed rather than tampered.)
    let middle = tampered.len() / 2;
    let flip = if &tampered[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(middle..=middle, flip);

    let refused = |r: &str| tidings::message::Reference::new(r);
    for (reference, expected) in [
        (refused(forged.expose_secret()), Refusal::Tampered),
        (refused(&tampered), Refusal::Tampered),
        (refused(login.expose_secret()), Refusal::WrongPurpose),
        (refused("ticket-4411"), Refusal::NotIssued),
        (refused(""), Refusal::NotIssued),
    ] {
        let outcome = w.connector.on_referral(&from, &reference).await.unwrap();
        assert_eq!(outcome, ConnectOutcome::Refused(expected));
    }
    w.clock.advance(Duration::from_secs(16 * 60));
    let outcome = w
        .connector
        .on_referral(&from, &refused(valid.expose_secret()))
        .await
        .unwrap();
    assert_eq!(outcome, ConnectOutcome::Refused(Refusal::Expired));
    assert_eq!(w.owner("333").await, None);
    assert!(
        w.directory
            .get(&ann)
            .await
            .unwrap()
            .unwrap()
            .addresses
            .is_empty()
    );
}

#[tokio::test]
async fn a_used_link_cannot_take_over_the_account() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    assert_eq!(
        w.post(&w.user("444").referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );

    // Mallory got hold of Ann's link and opens it from her own Messenger.
    let mallory = w.address("666");
    let outcome = w
        .connector
        .on_referral(
            &mallory,
            &tidings::message::Reference::new(token.expose_secret()),
        )
        .await
        .unwrap();
    assert_eq!(outcome, ConnectOutcome::Refused(Refusal::AlreadyUsed));
    assert_eq!(
        w.post(&w.user("666").referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );
    assert_eq!(w.owner("666").await, None);
    let ann_now = w.directory.get(&ann).await.unwrap().unwrap();
    assert_eq!(ann_now.addresses, vec![w.address("444")]);

    // Ann tapping her own link again is harmless.
    let again = w.refer("444", &token).await;
    assert!(matches!(again, ConnectOutcome::AlreadyLinked { .. }));

    // A fresh link that Ann opens while already linked is used up too: nobody can use it after.
    let fresh = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let reference = tidings::message::Reference::new(fresh.expose_secret());
    let outcome = w
        .connector
        .on_referral(&w.address("444"), &reference)
        .await
        .unwrap();
    assert!(matches!(outcome, ConnectOutcome::AlreadyLinked { .. }));
    let stolen = w.connector.on_referral(&mallory, &reference).await.unwrap();
    assert_eq!(stolen, ConnectOutcome::Refused(Refusal::AlreadyUsed));
    assert_eq!(
        w.directory.get(&ann).await.unwrap().unwrap().addresses,
        vec![w.address("444")]
    );
}

#[tokio::test]
async fn a_link_made_for_one_page_cannot_connect_a_conversation_on_another() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let token = w
        .connector
        .connect_token(&ann, Some("another-page"))
        .unwrap();
    let outcome = w.refer("445", &token).await;
    assert_eq!(outcome, ConnectOutcome::Refused(Refusal::OtherScope));
    assert_eq!(w.owner("445").await, None);
}

/// A directory whose next `link` fails once, as a database hiccup would.
struct HiccupDirectory {
    inner: Arc<MemoryDirectory>,
    fail_next_link: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Directory for HiccupDirectory {
    async fn get(&self, id: &ContactId) -> Result<Option<tidings::contact::Contact>, StoreError> {
        self.inner.get(id).await
    }
    async fn find_by_address(
        &self,
        a: &Address,
    ) -> Result<Option<tidings::contact::Contact>, StoreError> {
        self.inner.find_by_address(a).await
    }
    async fn create(&self, new: NewContact) -> Result<tidings::contact::Contact, StoreError> {
        self.inner.create(new).await
    }
    async fn link(&self, id: &ContactId, a: &Address) -> Result<(), StoreError> {
        if self.fail_next_link.swap(false, Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::other(
                "connection reset",
            )));
        }
        self.inner.link(id, a).await
    }
    async fn unlink(&self, a: &Address) -> Result<Option<ContactId>, StoreError> {
        self.inner.unlink(a).await
    }
    async fn merge(
        &self,
        from: &ContactId,
        into: &ContactId,
    ) -> Result<tidings::contact::Contact, StoreError> {
        self.inner.merge(from, into).await
    }
    async fn forget_contact(
        &self,
        id: &ContactId,
    ) -> Result<Option<tidings::contact::Contact>, StoreError> {
        self.inner.forget_contact(id).await
    }
}

#[tokio::test]
async fn a_store_failure_after_the_token_was_claimed_does_not_lose_the_connect() {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let memory = Arc::new(MemoryDirectory::new());
    let directory = Arc::new(HiccupDirectory {
        inner: memory.clone(),
        fail_next_link: std::sync::atomic::AtomicBool::new(true),
    });
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap())
        .with_clock(clock.shared());
    let connector = Connector::builder(directory, Arc::new(MemorySeenEvents::new()), tokens)
        .clock(clock.shared())
        .build();
    let ann = memory
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap()
        .id;
    let token = connector.connect_token(&ann, Some(PAGE)).unwrap();
    let from = Address::messenger(PAGE, "446").unwrap();
    let reference = tidings::message::Reference::new(token.expose_secret());
    assert!(
        connector.on_referral(&from, &reference).await.is_err(),
        "the hiccup surfaces (the Hub answers 500)"
    );
    let retried = connector.on_referral(&from, &reference).await.unwrap();
    assert!(
        matches!(retried, ConnectOutcome::Linked { .. }),
        "the redelivery completes the link: {retried:?}"
    );
    assert_eq!(
        memory.find_by_address(&from).await.unwrap().map(|c| c.id),
        Some(ann)
    );
}

#[tokio::test]
async fn an_address_moves_between_real_contacts_only_when_the_policy_allows() {
    for allowed in [false, true] {
        let w = World::new(ConnectPolicy::new().with_relink(allowed)).await;
        let ann = w.contact("ann@example.org").await;
        let bob = w.contact("bob@example.org").await;
        w.directory.link(&ann, &w.address("555")).await.unwrap();
        let token = w.connector.connect_token(&bob, Some(PAGE)).unwrap();
        let outcome = w
            .connector
            .on_referral(
                &w.address("555"),
                &tidings::message::Reference::new(token.expose_secret()),
            )
            .await
            .unwrap();
        if allowed {
            // Replacing a link is asked about first; nothing moves before the answer.
            let ConnectOutcome::Confirm(question) = &outcome else {
                panic!("{outcome:?}")
            };
            assert!(matches!(&question.change, LinkChange::Relink { from } if *from == ann));
            assert_eq!(question.account_hint().as_deref(), Some("b***@example.org"));
            assert_eq!(w.owner("555").await, Some(ann.clone()));
            let outcome = w
                .connector
                .on_answer(&w.address("555"), &question.yes)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(&outcome, ConnectOutcome::Relinked { from, contact } if *from == ann && contact.id == bob)
            );
            assert_eq!(w.owner("555").await, Some(bob));
        } else {
            assert_eq!(
                outcome,
                ConnectOutcome::Refused(Refusal::LinkedElsewhere {
                    current: ann.clone()
                })
            );
            assert_eq!(w.owner("555").await, Some(ann));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_senders_are_auto_registered_once_when_enabled() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let user = w.user("777");
    assert_eq!(
        w.post(&user.text("m_1", "Hi from my laptop", w.clock.now()))
            .await,
        200
    );
    let contact = w
        .directory
        .find_by_address(&w.address("777"))
        .await
        .unwrap()
        .unwrap();
    assert!(is_technical(&contact));
    assert_eq!(contact.email.as_deref(), Some("fb.777@users.invalid"));
    assert_eq!(
        w.post(&user.text("m_2", "Anyone there?", w.clock.now()))
            .await,
        200
    );
    assert_eq!(w.directory.len(), 1, "one contact for one sender");
    assert_eq!(
        w.inbox.conversation(&contact.id, 10).await.unwrap().len(),
        2
    );

    // Two first events of a new sender routed at the same time still create one contact.
    let twin = w.user("888");
    let (first, second) = (
        twin.text("m_a", "one", w.clock.now()),
        twin.text("m_b", "two", w.clock.now()),
    );
    let (a, b) = tokio::join!(w.post(&first), w.post(&second));
    assert_eq!((a, b), (200, 200));
    assert_eq!(w.directory.len(), 2);
    assert!(
        w.texts_sent().is_empty(),
        "registered senders are not asked to authorize"
    );
}

#[tokio::test]
async fn unknown_senders_are_asked_to_authorize_when_auto_registration_is_off() {
    let w = World::new(ConnectPolicy::new()).await;
    let body = w.user("999").text("m_1", "Who are you?", w.clock.now());
    let bytes = serde_json::to_vec(&body).unwrap();
    let request = http::Request::post("/webhook")
        .header("X-Hub-Signature-256", FakeUser::sign(&bytes, &w.secret))
        .body(Bytes::from(bytes))
        .unwrap();
    let webhook = w.webhook.clone();
    let handled = w.hub.handle(&webhook, &request).await;
    assert_eq!(handled.response.status(), 200);
    match &handled.routed[..] {
        [(_, Routed::Unlinked(event))] => assert!(
            matches!(&event.kind, tidings::message::InboundKind::Text { text, .. } if text == "Who are you?")
        ),
        other => panic!("expected one unlinked event, got {other:?}"),
    }
    assert!(w.directory.is_empty(), "nothing stored");
    assert_eq!(
        w.texts_sent(),
        ["Please connect your account first: open the link in your profile."]
    );
}

#[tokio::test]
async fn a_technical_contact_merges_into_the_real_profile_with_its_history() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let user = w.user("123");
    assert_eq!(
        w.post(&user.text("m_1", "Hi, laptop here", w.clock.now()))
            .await,
        200
    );
    let technical = w.owner("123").await.unwrap();
    let optin = event(
        "optin",
        "123",
        w.clock.now(),
        json!({"type":"notification_messages","notification_messages_token":"nm-laptop","title":"News"}),
    );
    assert_eq!(w.post(&optin).await, 200);
    assert_eq!(w.opt_ins.list(&technical).await.unwrap().len(), 1);

    let real = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&real, Some(PAGE)).unwrap();
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(
        w.post(&user.referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );
    // The merge would move the conversation: asked first, nothing moved yet.
    assert_eq!(
        w.texts_sent().last().map(String::as_str),
        Some("Connect this Messenger to a***@example.org?")
    );
    assert_eq!(w.owner("123").await, Some(technical.clone()));
    let (yes, _) = w.link_answers();
    assert_eq!(
        w.post(&user.postback("m_yes", "Yes", &yes, w.clock.now()))
            .await,
        200
    );

    assert_eq!(w.owner("123").await, Some(real.clone()));
    let merged = w.directory.get(&real).await.unwrap().unwrap();
    assert!(
        !is_technical(&merged),
        "a real contact never becomes technical through a merge"
    );
    assert!(
        w.directory.get(&technical).await.unwrap().is_none(),
        "the technical contact was merged away"
    );
    let history = w.inbox.conversation(&real, 10).await.unwrap();
    assert!(
        matches!(&history[0].content, EntryContent::Incoming(i) if i.text.as_deref() == Some("Hi, laptop here"))
    );
    let opt_ins = w.opt_ins.list(&real).await.unwrap();
    assert_eq!(
        opt_ins
            .iter()
            .map(|r| r.optin.token.as_str())
            .collect::<Vec<_>>(),
        ["nm-laptop"],
        "the opt-in follows the merge"
    );
    assert!(w.opt_ins.list(&technical).await.unwrap().is_empty());
    assert!(
        w.inbox
            .conversation(&technical, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn duplicated_deliveries_are_handled_once() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let body = w.user("321").text("m_dup", "once please", w.clock.now());
    assert_eq!(w.post(&body).await, 200);
    assert_eq!(w.post(&body).await, 200);
    assert_eq!(w.post(&body).await, 200);
    let contact = w.owner("321").await.unwrap();
    assert_eq!(w.inbox.conversation(&contact, 10).await.unwrap().len(), 1);
    assert_eq!(
        w.engine.times_offered("m_dup"),
        1,
        "routed once, not just stored once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_overlapping_deliveries_of_one_batch_route_each_event_once() {
    let inbox = Arc::new(FlakyInbox {
        delay: SLOW_WRITE,
        ..FlakyInbox::default()
    });
    let w = World::with_stores(
        ConnectPolicy::new(),
        inbox.clone(),
        Arc::new(SlowSeen::default()),
    )
    .await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let user = w.user("777");
    let now = w.clock.now();
    // A postback without `mid`, as Meta sends most of them: keyed by its content.
    let mut postback = user.postback("unused", "Start", "START", now);
    postback["entry"][0]["messaging"][0]["postback"]
        .as_object_mut()
        .unwrap()
        .remove("mid");
    let body = FakeUser::batch([
        user.get_started_with_ref("m_gs", token.expose_secret(), now),
        user.text("m_once", "hello", now),
        postback,
    ]);

    // Meta delivers the batch again while the first delivery is still being handled, 16
    // times at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let deliveries: Vec<_> = (0..16)
        .map(|_| {
            let (barrier, url, body, secret) = (
                barrier.clone(),
                w.url.clone(),
                body.clone(),
                w.secret.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                FakeUser::post(&url, &body, &secret).await.unwrap().0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for delivery in deliveries {
        statuses.push(delivery.await.unwrap());
    }
    let handled = statuses.iter().filter(|s| **s == 200).count();
    assert!(handled >= 1, "one delivery handled the batch: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "the overlapping deliveries are asked to come again: {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the deliveries overlapped: {statuses:?}"
    );

    // Each event was routed exactly once: linked once, one reply, one inbox entry each.
    assert_eq!(w.owner("777").await, Some(ann.clone()));
    assert_eq!(
        w.texts_sent(),
        ["Your Messenger is connected to your school account."],
        "one confirmation"
    );
    let entries = inbox.inner.conversation(&ann, 10).await.unwrap();
    assert_eq!(entries.len(), 2, "the message and the postback, once each");
    assert_eq!(w.engine.times_offered("m_once"), 1);
    assert_eq!(w.engine.offered.lock().unwrap().len(), 2);

    // Meta delivers the 503s again: the events are handled, the answer is 200.
    assert_eq!(w.post(&body).await, 200);
    assert_eq!(inbox.inner.conversation(&ann, 10).await.unwrap().len(), 2);
    assert_eq!(w.texts_sent().len(), 1);
}

#[tokio::test]
async fn a_routing_failure_answers_500_and_the_redelivery_routes_the_rest_once() {
    let flaky = Arc::new(FlakyInbox {
        fail_at: 2,
        ..FlakyInbox::default()
    });
    let w = World::with_inbox(ConnectPolicy::new().with_auto_register(true), flaky.clone()).await;
    let user = w.user("654");
    let batch = FakeUser::batch([
        user.text("m_a", "first", w.clock.now()),
        user.text("m_b", "second", w.clock.now()),
        user.text("m_c", "third", w.clock.now()),
    ]);
    assert_eq!(
        w.post(&batch).await,
        500,
        "the store failed on the second event"
    );
    assert_eq!(w.post(&batch).await, 200, "Meta delivers again");
    let contact = w.owner("654").await.unwrap();
    let texts: Vec<String> = flaky
        .inner
        .conversation(&contact, 10)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.content {
            EntryContent::Incoming(i) => i.text,
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["first", "second", "third"],
        "each event routed exactly once"
    );
    assert_eq!(
        w.engine.times_offered("m_a"),
        1,
        "the event routed before the failure is not routed again"
    );
    assert_eq!(w.engine.times_offered("m_c"), 1);
}

#[tokio::test]
async fn a_batch_mixing_every_event_kind_is_routed_by_kind() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    w.directory.link(&ann, &w.address("100")).await.unwrap();
    let cara = w.contact("cara@example.org").await;
    let token = w.connector.connect_token(&cara, Some(PAGE)).unwrap();
    let now = w.clock.now();
    let ann_user = w.user("100");
    let echo = json!({"object":"page","entry":[{"id":PAGE,"time":now.as_millis(),"messaging":[
        {"sender":{"id":PAGE},"recipient":{"id":"100"},"timestamp":now.as_millis(),"message":{"mid":"m_echo","is_echo":true,"app_id":123,"text":"our own"}}]}]});
    let standby = json!({"object":"page","entry":[{"id":PAGE,"time":now.as_millis(),"standby":[
        {"sender":{"id":"100"},"recipient":{"id":PAGE},"timestamp":now.as_millis(),"message":{"mid":"m_sb","text":"to the human"}}]}]});
    let reaction = json!({"object":"page","entry":[{"id":PAGE,"time":now.as_millis(),"messaging":[
        {"sender":{"id":"100"},"recipient":{"id":PAGE},"timestamp":now.as_millis(),"reaction":{"mid":"m_t","action":"react","reaction":"love"}}]}]});
    let batch = FakeUser::batch([
        ann_user.text("m_t", "text", now),
        ann_user.quick_reply("m_q", "Yes", "YES", now),
        ann_user.postback("m_p", "Later", "LATER", now),
        w.user("200").referral(token.expose_secret(), now),
        ann_user.delivery(&["m_out"], now),
        ann_user.read(now),
        echo,
        standby,
        reaction,
        w.user("300").text("m_stranger", "hello?", now),
    ]);
    let handled = w.deliver(&batch).await;
    assert_eq!(handled.response.status(), 200);
    let kinds: Vec<&'static str> = handled
        .routed
        .iter()
        .map(|(_, r)| match r {
            Routed::Inbox { .. } => "inbox",
            Routed::Connected(ConnectOutcome::Linked { .. }) => "linked",
            Routed::Receipt { .. } => "receipt",
            Routed::Ignored { .. } => "ignored",
            Routed::Standby { entry: Some(_) } => "standby-recorded",
            Routed::Unlinked(_) => "unlinked",
            Routed::Annotated { entry: Some(_), .. } => "annotated",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "inbox",
            "inbox",
            "inbox",
            "linked",
            "receipt",
            "receipt",
            "ignored",
            "standby-recorded",
            "annotated",
            "unlinked"
        ]
    );
    let entries = w.inbox.conversation(&ann, 10).await.unwrap();
    let choices: Vec<Option<String>> = entries
        .iter()
        .filter_map(|e| match &e.content {
            EntryContent::Incoming(i) => Some(i.choice.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        choices,
        [None, Some("YES".into()), Some("LATER".into()), None],
        "answers name their choice; standby recorded"
    );
    assert_eq!(w.owner("200").await, Some(cara));
}

/// A Messenger event of `psid` on the test Page, as Meta wraps one in a webhook body.
fn event(field: &str, psid: &str, at: Timestamp, value: Value) -> Value {
    json!({"object":"page","entry":[{"id":PAGE,"time":at.as_millis(),"messaging":[
        {"sender":{"id":psid},"recipient":{"id":PAGE},"timestamp":at.as_millis(), field: value}]}]})
}

#[tokio::test]
async fn reactions_and_edits_land_on_the_message_they_target_even_when_they_arrive_first() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    w.directory.link(&ann, &w.address("100")).await.unwrap();
    let t0 = w.clock.now();
    let later = |s: i64| Timestamp::from_millis(t0.as_millis() + s * 1000);

    // Meta does not promise order: the reaction and the edit arrive before the message.
    let reaction = event(
        "reaction",
        "100",
        later(5),
        json!({"mid":"m_first","action":"react","emoji":"\u{2764}\u{FE0F}","reaction":"love"}),
    );
    let edit = event(
        "message_edit",
        "100",
        later(6),
        json!({"mid":"m_first","text":"Hello, can I get a refund?","num_edit":1}),
    );
    assert_eq!(w.post(&reaction).await, 200);
    assert_eq!(w.post(&edit).await, 200);
    assert_eq!(w.post(&reaction).await, 200, "a redelivery is fine");
    assert_eq!(
        w.post(
            &w.user("100")
                .text("m_first", "Hello, can I get a refnd?", later(1))
        )
        .await,
        200
    );
    let entries = w.inbox.conversation(&ann, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "annotations are no entries of their own");
    let message = &entries[0];
    assert_eq!(message.annotations.len(), 2, "kept once each: {message:?}");
    assert_eq!(message.reaction().and_then(|r| r.name), Some("love"));
    assert_eq!(message.current_text(), Some("Hello, can I get a refund?"));
    assert!(
        matches!(&message.content, EntryContent::Incoming(i) if i.text.as_deref() == Some("Hello, can I get a refnd?")),
        "the text as first written is kept beside its edits"
    );

    // A reaction to what an agent sent lands on the outgoing entry; taking it back clears it.
    let reply = w
        .inbox
        .record_outgoing(
            &ann,
            later(10),
            Outgoing::new(Message::text("Sure, done.").unwrap()).with_delivery(
                tidings::inbox::DeliveryRecord::sent(
                    tidings::Channel::Messenger,
                    vec!["m_reply".into()],
                ),
            ),
        )
        .await
        .unwrap();
    let like = event(
        "reaction",
        "100",
        later(11),
        json!({"mid":"m_reply","action":"react","emoji":"\u{1F44D}","reaction":"like"}),
    );
    let handled = w.deliver(&like).await;
    assert!(
        matches!(&handled.routed[..], [(_, Routed::Annotated { entry: Some(e), .. })] if *e == reply),
        "{:?}",
        handled.routed
    );
    let shown = |entries: Vec<Entry>| entries.into_iter().find(|e| e.id == reply).unwrap();
    let out = shown(w.inbox.conversation(&ann, 10).await.unwrap());
    assert_eq!(out.reaction().and_then(|r| r.emoji), Some("\u{1F44D}"));
    let unlike = event(
        "reaction",
        "100",
        later(12),
        json!({"mid":"m_reply","action":"unreact"}),
    );
    assert_eq!(w.post(&unlike).await, 200);
    let out = shown(w.inbox.conversation(&ann, 10).await.unwrap());
    assert_eq!(out.reaction(), None);
    assert_eq!(out.annotations.len(), 2, "the history of reactions is kept");
}

#[tokio::test]
async fn a_marketing_messages_opt_in_is_kept_for_the_contact_and_a_stop_replaces_it() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let ann = w.contact("ann@example.org").await;
    w.directory.link(&ann, &w.address("100")).await.unwrap();
    let t0 = w.clock.now();
    let optin = |status: &str, at: Timestamp| {
        event(
            "optin",
            "100",
            at,
            json!({
                "type": "notification_messages",
                "payload": "WEEKLY_NEWS",
                "notification_messages_token": "nm-token-123",
                "notification_messages_frequency": "WEEKLY",
                "notification_messages_timezone": "Europe/Berlin",
                "token_expiry_timestamp": t0.as_millis() + 180 * 86_400_000_i64,
                "user_token_status": "NOT_REFRESHED",
                "notification_messages_status": status,
                "title": "Course news"
            }),
        )
    };
    assert_eq!(w.post(&optin("RESUME_NOTIFICATIONS", t0)).await, 200);
    let kept = w.opt_ins.list(&ann).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].optin.token, "nm-token-123");
    assert_eq!(kept[0].topic(), "Course news");
    assert_eq!(kept[0].optin.frequency.as_deref(), Some("WEEKLY"));
    assert!(!kept[0].optin.is_stopped());
    assert!(
        !format!("{kept:?}").contains("nm-token-123"),
        "the token never shows in Debug"
    );

    let stop_at = Timestamp::from_millis(t0.as_millis() + 60_000);
    assert_eq!(w.post(&optin("STOP_NOTIFICATIONS", stop_at)).await, 200);
    let kept = w.opt_ins.list(&ann).await.unwrap();
    assert_eq!(kept.len(), 1, "one record per topic");
    assert!(kept[0].optin.is_stopped(), "the stop replaced the opt-in");

    // A stranger's opt-in registers them, as a message would, and is kept for them.
    assert_eq!(
        w.post(&event(
            "optin",
            "555",
            t0,
            json!({"type":"notification_messages","notification_messages_token":"nm-2"})
        ))
        .await,
        200
    );
    let stranger = w.owner("555").await.expect("registered");
    assert_eq!(
        w.opt_ins.list(&stranger).await.unwrap()[0].optin.token,
        "nm-2"
    );
}

#[tokio::test]
async fn thread_control_events_say_who_owns_the_thread() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    w.directory.link(&ann, &w.address("100")).await.unwrap();
    let address = w.address("100");
    let t = |s: i64| Timestamp::from_millis(w.clock.now().as_millis() + s * 1000);
    let owner = || async { w.threads.get(&address).await.unwrap().map(|s| s.owner) };
    assert_eq!(owner().await, None);

    // The Page Inbox takes the thread: this app hears it lost control.
    let take = event(
        "take_thread_control",
        "100",
        t(1),
        json!({"previous_owner_app_id":"1111","new_owner_app_id":"263902037430900","metadata":"agent took over"}),
    );
    assert_eq!(w.post(&take).await, 200);
    assert_eq!(
        owner().await,
        Some(ThreadOwner::Other {
            app_id: Some("263902037430900".into())
        })
    );
    // While it owns the thread, messages come as standby: recorded, never answered, and the
    // owner's app id is kept.
    let standby = json!({"object":"page","entry":[{"id":PAGE,"time":t(2).as_millis(),"standby":[
        {"sender":{"id":"100"},"recipient":{"id":PAGE},"timestamp":t(2).as_millis(),"message":{"mid":"m_sb","text":"to the human"}}]}]});
    assert_eq!(w.post(&standby).await, 200);
    assert!(matches!(
        owner().await,
        Some(ThreadOwner::Other { app_id: Some(_) })
    ));
    // Another app asks for control: reported, nothing moves.
    let request = event(
        "request_thread_control",
        "100",
        t(3),
        json!({"requested_owner_app_id":"2222","metadata":"bot wants it"}),
    );
    assert_eq!(w.post(&request).await, 200);
    assert!(matches!(owner().await, Some(ThreadOwner::Other { .. })));
    // The human passes the thread back.
    let pass = event(
        "pass_thread_control",
        "100",
        t(4),
        json!({"previous_owner_app_id":"263902037430900","new_owner_app_id":"1111","metadata":"done"}),
    );
    assert_eq!(w.post(&pass).await, 200);
    assert_eq!(owner().await, Some(ThreadOwner::This));
    // A take older than the pass, arriving late (a new event, not a redelivery), does not
    // move it back.
    let late_take = event(
        "take_thread_control",
        "100",
        t(3),
        json!({"previous_owner_app_id":"1111","new_owner_app_id":"263902037430900","metadata":"late"}),
    );
    let late = w.deliver(&late_take).await;
    assert!(
        matches!(&late.routed[..], [(_, Routed::ThreadControl { .. })]),
        "the late take was routed: {:?}",
        late.routed
    );
    assert_eq!(owner().await, Some(ThreadOwner::This));
    assert_eq!(w.texts_sent(), Vec::<String>::new(), "nothing was answered");
}

/// Bob was auto-registered (his conversation is kept) and taps the connect link Ann was
/// sent and forwarded to him: he is asked, says No, and nothing of either account moves.
#[tokio::test]
async fn a_forwarded_link_asks_first_and_no_leaves_everything_as_it_was() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let bob = w.user("777");
    assert_eq!(
        w.post(&bob.text("m_bob1", "Hi, I'm Bob", w.clock.now()))
            .await,
        200
    );
    let bobs = w.owner("777").await.unwrap();
    let ann = w.contact("ann@example.org").await;
    let forwarded = w.connector.connect_token(&ann, Some(PAGE)).unwrap();

    assert_eq!(
        w.post(&bob.referral(forwarded.expose_secret(), w.clock.now()))
            .await,
        200
    );
    assert_eq!(
        w.texts_sent().last().map(String::as_str),
        Some("Connect this Messenger to a***@example.org?"),
        "the question names whose account, masked"
    );
    assert!(
        !w.graph
            .sent()
            .last()
            .unwrap()
            .body
            .to_string()
            .contains("ann@example.org"),
        "the address itself is not shown"
    );
    let (_, no) = w.link_answers();
    let handled = w
        .deliver(&bob.postback("m_no", "No", &no, w.clock.now()))
        .await;
    assert_eq!(handled.response.status(), 200);
    assert!(
        matches!(&handled.routed[..], [(_, Routed::Connected(ConnectOutcome::Declined { contact }))] if *contact == ann),
        "the host is told: {:?}",
        handled.routed
    );
    assert_eq!(w.owner("777").await, Some(bobs.clone()), "Bob stays Bob");
    assert!(
        w.directory
            .get(&ann)
            .await
            .unwrap()
            .unwrap()
            .addresses
            .is_empty()
    );
    assert_eq!(w.inbox.conversation(&bobs, 10).await.unwrap().len(), 1);
    assert!(w.inbox.conversation(&ann, 10).await.unwrap().is_empty());
    assert_eq!(
        w.engine.times_offered("m_no"),
        0,
        "an answer is no message to processes"
    );

    // A Yes tapped after the No does not count: the first answer stands, and the link is spent.
    let (yes, _) = w.link_answers();
    let outcome = w
        .connector
        .on_answer(&w.address("777"), &yes)
        .await
        .unwrap();
    assert_eq!(outcome, Some(ConnectOutcome::Refused(Refusal::AlreadyUsed)));
    let again = w.refer("777", &forwarded).await;
    assert_eq!(again, ConnectOutcome::Refused(Refusal::AlreadyUsed));
    assert_eq!(w.owner("777").await, Some(bobs));
}

#[tokio::test]
async fn forged_stale_and_foreign_answers_link_nothing_and_a_double_tap_links_once() {
    let w = World::new(ConnectPolicy::new().with_auto_register(true)).await;
    let user = w.user("888");
    assert_eq!(w.post(&user.text("m_1", "hello", w.clock.now())).await, 200);
    let technical = w.owner("888").await.unwrap();
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    assert_eq!(
        w.post(&user.referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );
    let (yes, _) = w.link_answers();
    let me = w.address("888");
    let answer = |payload: String| {
        let (w, me) = (&w, me.clone());
        async move { w.connector.on_answer(&me, &payload).await.unwrap() }
    };

    // Forged: one character of the signed answer changed.
    let mut forged = yes.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        answer(forged).await,
        Some(ConnectOutcome::Refused(Refusal::Tampered))
    );
    assert_eq!(
        answer("tdc1.not-a-token".into()).await,
        Some(ConnectOutcome::Refused(Refusal::Tampered))
    );
    // Sent from another conversation than the one asked.
    assert_eq!(
        w.connector
            .on_answer(&w.address("999"), &yes)
            .await
            .unwrap(),
        Some(ConnectOutcome::Refused(Refusal::OtherAddress))
    );
    // Any other payload is no answer at all: routed as a message.
    assert_eq!(answer("LATER".into()).await, None);
    assert_eq!(
        w.owner("888").await,
        Some(technical.clone()),
        "nothing linked yet"
    );

    // A double tap on Yes, both taps in one delivery: merged once, the second is "already".
    let batch = FakeUser::batch([
        user.postback("m_y1", "Yes", &yes, w.clock.now()),
        user.postback("m_y2", "Yes", &yes, w.clock.now()),
    ]);
    let handled = w.deliver(&batch).await;
    let outcomes: Vec<&str> = handled
        .routed
        .iter()
        .map(|(_, r)| match r {
            Routed::Connected(ConnectOutcome::Merged { .. }) => "merged",
            Routed::Connected(ConnectOutcome::AlreadyLinked { .. }) => "already",
            _ => "other",
        })
        .collect();
    assert_eq!(outcomes, ["merged", "already"], "{:?}", handled.routed);
    assert_eq!(w.owner("888").await, Some(ann.clone()));
    assert_eq!(
        w.texts_sent()
            .iter()
            .filter(|t| t.starts_with("Your Messenger is connected"))
            .count(),
        1,
        "one confirmation"
    );
    assert_eq!(
        w.inbox.conversation(&ann, 10).await.unwrap().len(),
        1,
        "history moved once"
    );

    // Stale: a question answered after the link's lifetime.
    let other = w.user("889");
    assert_eq!(w.post(&other.text("m_2", "hi", w.clock.now())).await, 200);
    let cara = w.contact("cara@example.org").await;
    let token = w.connector.connect_token(&cara, Some(PAGE)).unwrap();
    assert_eq!(
        w.post(&other.referral(token.expose_secret(), w.clock.now()))
            .await,
        200
    );
    let (yes, _) = w.link_answers();
    w.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        w.connector
            .on_answer(&w.address("889"), &yes)
            .await
            .unwrap(),
        Some(ConnectOutcome::Refused(Refusal::Expired))
    );
    assert_ne!(w.owner("889").await, Some(cara));
}

#[tokio::test]
async fn when_to_ask_is_the_policys_choice() {
    // Never: a merge happens at once, as before the question existed.
    let w = World::new(
        ConnectPolicy::new()
            .with_auto_register(true)
            .with_confirm(ConfirmLinks::Never),
    )
    .await;
    assert_eq!(
        w.post(&w.user("1").text("m_1", "hi", w.clock.now())).await,
        200
    );
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let outcome = w.refer("1", &token).await;
    assert!(
        matches!(outcome, ConnectOutcome::Merged { .. }),
        "{outcome:?}"
    );

    // The default asks nothing for a first link of a new address ...
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let outcome = w.refer("2", &token).await;
    assert!(
        matches!(outcome, ConnectOutcome::Linked { .. }),
        "{outcome:?}"
    );

    // ... and Always asks even then.
    let w = World::new(ConnectPolicy::new().with_confirm(ConfirmLinks::Always)).await;
    let ann = w.contact("ann@example.org").await;
    let token = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let outcome = w.refer("3", &token).await;
    let ConnectOutcome::Confirm(question) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(question.change, LinkChange::Link);
    assert_eq!(w.owner("3").await, None);
    let linked = w
        .connector
        .on_answer(&w.address("3"), &question.yes)
        .await
        .unwrap();
    assert!(
        matches!(linked, Some(ConnectOutcome::Linked { .. })),
        "{linked:?}"
    );
    assert_eq!(w.owner("3").await, Some(ann));
}

/// Ten people write three messages each in one batch: their writes overlap (a store that
/// batches concurrent writes gets them together), each person's stay in order, and a failure
/// of one person's second message holds back only that person's rest, which the redelivery
/// routes in order.
#[tokio::test]
async fn senders_are_routed_side_by_side_and_each_in_order() {
    let probe = Arc::new(FlakyInbox {
        fail_mid: "m_3_2".into(),
        delay: Duration::from_millis(5),
        ..FlakyInbox::default()
    });
    let w = World::with_inbox(ConnectPolicy::new().with_auto_register(true), probe.clone()).await;
    let now = w.clock.now();
    let events: Vec<Value> = (1..=3)
        .flat_map(|n| {
            let w = &w;
            (0..10).map(move |p| {
                w.user(&format!("50{p}")).text(
                    &format!("m_{p}_{n}"),
                    &format!("message {n}"),
                    Timestamp::from_millis(now.as_millis() + n),
                )
            })
        })
        .collect();
    let batch = FakeUser::batch(events);
    let first = w.deliver(&batch).await;
    assert_eq!(first.response.status(), 500, "one write failed");
    assert!(
        probe.most_in_flight.load(Ordering::SeqCst) > 1,
        "writes of different senders overlap"
    );
    assert_eq!(
        first.routed.len(),
        28,
        "everyone else's messages went through; person 3's second and third wait"
    );
    let routed_keys: Vec<&str> = first.routed.iter().map(|(e, _)| e.key.as_str()).collect();
    assert!(!routed_keys.contains(&"messenger:m_3_2") && !routed_keys.contains(&"messenger:m_3_3"));

    let again = w.deliver(&batch).await;
    assert_eq!(again.response.status(), 200);
    assert_eq!(again.routed.len(), 2, "only what was held back");
    assert_eq!(again.duplicates, 28);

    let written = probe.written.lock().unwrap().clone();
    for p in 0..10 {
        let contact = w.owner(&format!("50{p}")).await.unwrap();
        let order: Vec<&str> = written
            .iter()
            .filter(|(c, _)| *c == contact)
            .map(|(_, m)| m.as_str())
            .collect();
        let expected: Vec<String> = (1..=3).map(|n| format!("m_{p}_{n}")).collect();
        assert_eq!(order, expected, "person {p}'s messages in order, each once");
    }
}

/// A used link presented from a conversation linked to someone else is refused as used: it
/// never reads as "already linked", and the other person's link stays as it was.
#[tokio::test]
async fn a_used_link_from_a_conversation_linked_to_someone_else_is_refused_as_used() {
    let w = World::new(ConnectPolicy::new()).await;
    let ann = w.contact("ann@example.org").await;
    let bob = w.contact("bob@example.org").await;
    let ann_link = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    let bob_link = w.connector.connect_token(&bob, Some(PAGE)).unwrap();
    assert!(matches!(
        w.refer("444", &ann_link).await,
        ConnectOutcome::Linked { .. }
    ));
    assert!(matches!(
        w.refer("666", &bob_link).await,
        ConnectOutcome::Linked { .. }
    ));
    // Bob opens Ann's (used) link from his own conversation.
    assert_eq!(
        w.refer("666", &ann_link).await,
        ConnectOutcome::Refused(Refusal::AlreadyUsed)
    );
    assert_eq!(w.owner("666").await, Some(bob));
    assert_eq!(w.owner("444").await, Some(ann));
}

/// The policy's token lifetime and technical e-mail template are the ones used.
#[tokio::test]
async fn the_token_lifetime_and_the_technical_email_follow_the_policy() {
    let w = World::new(
        ConnectPolicy::new()
            .with_token_ttl(Duration::from_secs(60))
            .with_auto_register(true)
            .with_technical_email("messenger+{scope}.{id}@school.example"),
    )
    .await;
    let ann = w.contact("ann@example.org").await;
    let late = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    w.clock.advance(Duration::from_secs(61));
    assert_eq!(
        w.refer("444", &late).await,
        ConnectOutcome::Refused(Refusal::Expired),
        "a minute-long link is over after 61 s"
    );
    let prompt = w.connector.connect_token(&ann, Some(PAGE)).unwrap();
    w.clock.advance(Duration::from_secs(59));
    assert!(matches!(
        w.refer("444", &prompt).await,
        ConnectOutcome::Linked { .. }
    ));

    assert_eq!(
        w.post(&w.user("777").text("m_1", "Hi", w.clock.now()))
            .await,
        200
    );
    let registered = w
        .directory
        .find_by_address(&w.address("777"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        registered.email.as_deref(),
        Some("messenger+104812345678901.777@school.example")
    );
}

/// A directory whose `create` waits until two callers are inside it, so that two first
/// events of one new sender both miss the lookup and meet at the create.
struct MeetingDirectory {
    inner: MemoryDirectory,
    barrier: tokio::sync::Barrier,
}

#[async_trait]
impl Directory for MeetingDirectory {
    async fn get(&self, id: &ContactId) -> Result<Option<tidings::Contact>, StoreError> {
        self.inner.get(id).await
    }
    async fn find_by_address(&self, a: &Address) -> Result<Option<tidings::Contact>, StoreError> {
        self.inner.find_by_address(a).await
    }
    async fn create(&self, new: NewContact) -> Result<tidings::Contact, StoreError> {
        self.barrier.wait().await;
        self.inner.create(new).await
    }
    async fn link(&self, id: &ContactId, a: &Address) -> Result<(), StoreError> {
        self.inner.link(id, a).await
    }
    async fn unlink(&self, a: &Address) -> Result<Option<ContactId>, StoreError> {
        self.inner.unlink(a).await
    }
    async fn merge(
        &self,
        from: &ContactId,
        into: &ContactId,
    ) -> Result<tidings::Contact, StoreError> {
        self.inner.merge(from, into).await
    }
    async fn forget_contact(&self, id: &ContactId) -> Result<Option<tidings::Contact>, StoreError> {
        self.inner.forget_contact(id).await
    }
}

/// Two first events of one new sender, both past the lookup when they register: one creates
/// the contact, the other meets the conflict and takes that contact. One contact, no error.
#[tokio::test]
async fn two_first_events_of_a_new_sender_meeting_at_registration_make_one_contact() {
    let directory = Arc::new(MeetingDirectory {
        inner: MemoryDirectory::new(),
        barrier: tokio::sync::Barrier::new(2),
    });
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let connector = Connector::builder(
        directory.clone(),
        Arc::new(MemorySeenEvents::new()),
        Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap()),
    )
    .clock(clock.shared())
    .policy(ConnectPolicy::new().with_auto_register(true))
    .build();
    let sender = Address::messenger(PAGE, "888").unwrap();
    let (a, b) = tokio::join!(
        connector.resolve_sender(&sender),
        connector.resolve_sender(&sender)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids: Vec<ContactId> = [&a, &b]
        .iter()
        .map(|s| match s {
            Sender::Registered(c) | Sender::Known(c) => c.id.clone(),
            other => panic!("not resolved: {other:?}"),
        })
        .collect();
    assert_eq!(ids[0], ids[1], "one contact");
    assert_eq!(
        [&a, &b]
            .iter()
            .filter(|s| matches!(s, Sender::Registered(_)))
            .count(),
        1,
        "one registered it, the other found it"
    );
    assert_eq!(directory.inner.len(), 1);
}
