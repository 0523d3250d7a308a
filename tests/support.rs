//! The support inbox end to end: users write through the webhook, agents reply through the
//! transports they tick, each message shows which transport delivered it and how far it got.
//! Messenger goes over loopback to the fake Graph API; e-mail to a recording transport.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use serde_json::Value;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, ContactId, NewContact},
    hub::Hub,
    identity::{Connector, Directory},
    inbox::{DeliveryStatus, Entry, EntryContent, Inbox, Reply, Support},
    keys::SigningKey,
    message::Message,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, Policy, RetryPolicy,
        StaticPages, VerifyToken, Webhook,
    },
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
    testkit::{
        graph::{FakeGraph, GraphFault},
        user::FakeUser,
    },
    token::Tokens,
    transport::{SharedTransport, stub::StubTransport},
};

const PAGE: &str = "104812345678901";
const PSID: &str = "6789012345678901";
const HOUR: Duration = Duration::from_secs(3600);

struct World {
    clock: ManualClock,
    graph: FakeGraph,
    mail: Arc<StubTransport>,
    directory: Arc<MemoryDirectory>,
    inbox: Arc<MemoryInbox>,
    hub: Hub,
    webhook: Webhook,
    support: Support,
    secret: AppSecret,
    ann: ContactId,
}

impl World {
    async fn new() -> World {
        let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
        let secret = AppSecret::new("support-test-secret");
        let graph = FakeGraph::builder()
            .page(PAGE, "page-token")
            .clock(clock.shared())
            .start()
            .await
            .unwrap();
        let directory = Arc::new(MemoryDirectory::new());
        let inbox = Arc::new(MemoryInbox::new());
        let seen = Arc::new(MemorySeenEvents::new());
        let last = Arc::new(MemoryLastInbound::new());
        let pages = Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("page-token"),
        )]));
        let messenger: SharedTransport = Arc::new(
            MessengerTransport::builder(pages.clone(), last.clone())
                .base_url(graph.base_url())
                .clock(clock.shared())
                .policy(Policy::new().with_human_agent(true))
                .retry(RetryPolicy::default().with_max_retries(0))
                .build()
                .unwrap(),
        );
        let mail = Arc::new(StubTransport::new(Channel::Email).with_clock(clock.shared()));
        let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![3u8; 32])).unwrap())
            .with_clock(clock.shared());
        let connector = Connector::builder(directory.clone(), seen.clone(), tokens)
            .clock(clock.shared())
            .build();
        let hub = Hub::builder(connector, directory.clone(), inbox.clone()).build();
        let webhook = Webhook::builder(secret.clone(), VerifyToken::new("v"), pages, seen, last)
            .clock(clock.shared())
            .build();
        let support = Support::builder(directory.clone(), inbox.clone())
            .clock(clock.shared())
            .transport(messenger)
            .transport(mail.clone())
            .build();
        let ann = directory
            .create(
                NewContact::new()
                    .with_email("ann@example.org")
                    .with_address(Address::messenger(PAGE, PSID).unwrap()),
            )
            .await
            .unwrap()
            .id;
        World {
            clock,
            graph,
            mail,
            directory,
            inbox,
            hub,
            webhook,
            support,
            secret,
            ann,
        }
    }

    async fn deliver(&self, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = http::Request::post("/webhook")
            .header("X-Hub-Signature-256", FakeUser::sign(&bytes, &self.secret))
            .body(Bytes::from(bytes))
            .unwrap();
        let handled = self.hub.handle(&self.webhook, &request).await;
        assert_eq!(handled.response.status(), 200, "{:?}", handled.error);
    }

    /// Ann writes on Messenger now (Meta's side sees it too, for its window).
    async fn ann_writes(&self, mid: &str, text: &str) {
        self.graph.user_wrote(PAGE, PSID, self.clock.now());
        self.deliver(&FakeUser::new(PAGE, PSID).text(mid, text, self.clock.now()))
            .await;
    }

    async fn conversation(&self) -> Vec<Entry> {
        self.inbox.conversation(&self.ann, 100).await.unwrap()
    }
}

fn outgoing(entry: &Entry) -> Vec<(Channel, DeliveryStatus)> {
    match &entry.content {
        EntryContent::Outgoing(o) => o
            .deliveries
            .iter()
            .map(|d| (d.channel.clone(), d.status))
            .collect(),
        other => panic!("expected an outgoing entry, got {other:?}"),
    }
}

fn text(s: &str) -> Message {
    Message::text(s).unwrap()
}

#[tokio::test]
async fn what_a_user_writes_lands_in_their_conversation() {
    let w = World::new().await;
    w.ann_writes("m_1", "My lesson video won't play").await;
    let conversation = w.conversation().await;
    match &conversation[..] {
        [entry] => match &entry.content {
            EntryContent::Incoming(i) => {
                assert_eq!(i.channel, Channel::Messenger);
                assert_eq!(i.message_id.as_deref(), Some("m_1"));
                assert_eq!(i.text.as_deref(), Some("My lesson video won't play"));
                assert_eq!(entry.at, w.clock.now());
            }
            other => panic!("{other:?}"),
        },
        other => panic!("expected one entry, got {other:?}"),
    }
}

#[tokio::test]
async fn the_facebook_checkbox_is_offered_only_with_a_linked_address() {
    let w = World::new().await;
    let options = w.support.transports_for(&w.ann).await.unwrap();
    assert_eq!(
        options
            .iter()
            .map(|o| (o.channel.to_string(), o.available()))
            .collect::<Vec<_>>(),
        [("messenger".to_owned(), true), ("email".to_owned(), true)]
    );
    let bob = w
        .directory
        .create(NewContact::new().with_email("bob@example.org"))
        .await
        .unwrap()
        .id;
    let options = w.support.transports_for(&bob).await.unwrap();
    assert!(!options[0].available(), "no Messenger address, no checkbox");
    assert!(options[1].available());
    let technical = w
        .directory
        .create(
            NewContact::new()
                .with_email("fb.1@users.invalid")
                .with_field("tidings_technical", true),
        )
        .await
        .unwrap()
        .id;
    assert!(
        !w.support.transports_for(&technical).await.unwrap()[1].available(),
        "a technical e-mail is not offered"
    );
}

#[tokio::test]
async fn replies_go_through_the_ticked_transports_and_record_each_outcome() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;

    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(text("Hello Ann!"), [Channel::Messenger]).by("agent-7"),
        )
        .await
        .unwrap();
    assert!(report.delivered());
    assert_eq!(
        w.graph.sent()[0].messaging_type.as_deref(),
        Some("RESPONSE")
    );

    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(text("Also by mail"), [Channel::Messenger, Channel::Email]),
        )
        .await
        .unwrap();
    assert_eq!(report.deliveries.len(), 2);
    assert_eq!(
        w.mail.sent()[0].to,
        Address::email("ann@example.org").unwrap()
    );

    let conversation = w.conversation().await;
    assert_eq!(
        outgoing(&conversation[1]),
        [(Channel::Messenger, DeliveryStatus::Sent)]
    );
    assert_eq!(
        outgoing(&conversation[2]),
        [
            (Channel::Messenger, DeliveryStatus::Sent),
            (Channel::Email, DeliveryStatus::Sent)
        ]
    );
    match &conversation[1].content {
        EntryContent::Outgoing(o) => {
            assert_eq!(o.author.as_deref(), Some("agent-7"));
            assert_eq!(
                o.deliveries[0].message_ids,
                ["m_1"],
                "the transport's message id"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn after_30_hours_human_agent_and_after_8_days_refused_while_email_still_goes() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;

    w.clock.advance(30 * HOUR);
    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(text("Sorry for the wait"), [Channel::Messenger]),
        )
        .await
        .unwrap();
    assert!(report.delivered());
    assert_eq!(w.graph.sent()[0].tag.as_deref(), Some("HUMAN_AGENT"));

    w.clock.advance(7 * 24 * HOUR);
    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(
                text("Still need help?"),
                [Channel::Messenger, Channel::Email],
            ),
        )
        .await
        .unwrap();
    assert_eq!(report.deliveries[0].status, DeliveryStatus::Refused);
    assert!(
        report.deliveries[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("window closed"),
        "{:?}",
        report.deliveries[0]
    );
    assert_eq!(report.deliveries[1].status, DeliveryStatus::Sent);
    assert_eq!(
        w.graph.sent().len(),
        1,
        "nothing was sent to Graph after 8 days"
    );
    assert_eq!(w.mail.sent().len(), 1);
}

#[tokio::test]
async fn receipts_mark_entries_delivered_then_read() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;
    w.support
        .reply(&w.ann, Reply::new(text("First"), [Channel::Messenger]))
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(5));
    w.support
        .reply(&w.ann, Reply::new(text("Second"), [Channel::Messenger]))
        .await
        .unwrap();
    let sent = w.graph.sent();
    let user = FakeUser::new(PAGE, PSID);

    // Deliveries are watermarks too: one between the two replies covers only the first.
    let between = w.clock.now().saturating_sub(Duration::from_secs(4));
    w.clock.advance(Duration::from_secs(5));
    let mid = sent[0].message_id.clone().unwrap();
    w.deliver(&user.delivery(&[mid.as_str()], between)).await;
    let conversation = w.conversation().await;
    assert_eq!(
        outgoing(&conversation[1]),
        [(Channel::Messenger, DeliveryStatus::Delivered)]
    );
    assert_eq!(
        outgoing(&conversation[2]),
        [(Channel::Messenger, DeliveryStatus::Sent)]
    );

    // Read is a watermark: everything sent before it is read.
    w.deliver(&user.read(w.clock.now())).await;
    let conversation = w.conversation().await;
    assert_eq!(
        outgoing(&conversation[1]),
        [(Channel::Messenger, DeliveryStatus::Read)]
    );
    assert_eq!(
        outgoing(&conversation[2]),
        [(Channel::Messenger, DeliveryStatus::Read)]
    );
}

#[tokio::test]
async fn out_of_order_webhooks_still_give_an_ordered_conversation() {
    let w = World::new().await;
    let user = FakeUser::new(PAGE, PSID);
    let t0 = w.clock.now();
    let late = t0.saturating_add(Duration::from_secs(20));
    let early = t0.saturating_add(Duration::from_secs(10));
    w.deliver(&user.text("m_3", "third", late)).await;
    w.deliver(&user.text("m_1", "first", t0)).await;
    w.deliver(&user.text("m_2", "second", early)).await;
    let texts: Vec<String> = w
        .conversation()
        .await
        .into_iter()
        .filter_map(|e| match e.content {
            EntryContent::Incoming(i) => i.text,
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
}

#[tokio::test]
async fn a_graph_failure_shows_as_failed_with_its_reason() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;
    w.graph.fail_next(1, GraphFault::unavailable_user());
    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(text("Are you there?"), [Channel::Messenger, Channel::Email]),
        )
        .await
        .unwrap();
    assert_eq!(report.deliveries[0].status, DeliveryStatus::Failed);
    let reason = report.deliveries[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("unreachable") && reason.contains("551"),
        "{reason}"
    );
    assert!(report.delivered(), "e-mail still delivered it");
    assert_eq!(
        outgoing(&w.conversation().await[1])[0].1,
        DeliveryStatus::Failed
    );
}

#[tokio::test]
async fn a_reply_no_transport_could_deliver_is_still_recorded() {
    let w = World::new().await;
    // Ann never wrote on Messenger: its window is closed; SMS is not configured.
    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(
                text("Welcome!"),
                [Channel::Messenger, Channel::custom("sms").unwrap()],
            ),
        )
        .await
        .unwrap();
    assert!(!report.delivered());
    assert_eq!(
        report
            .deliveries
            .iter()
            .map(|d| d.status)
            .collect::<Vec<_>>(),
        [DeliveryStatus::Refused, DeliveryStatus::Refused]
    );
    let conversation = w.conversation().await;
    assert_eq!(conversation.len(), 1, "recorded, not dropped");
    match &conversation[0].content {
        EntryContent::Outgoing(o) => {
            let reasons: Vec<&str> = o
                .deliveries
                .iter()
                .map(|d| d.reason.as_deref().unwrap_or(""))
                .collect();
            assert!(reasons[0].contains("window closed"), "{reasons:?}");
            assert!(
                reasons[1].contains("no custom:sms transport"),
                "{reasons:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_answer_to_an_agents_choices_comes_back_naming_the_choice() {
    let w = World::new().await;
    w.ann_writes("m_1", "Can I change my plan?").await;
    let question = Message::builder("Which plan?")
        .choice("Basic", "PLAN_BASIC")
        .choice("Pro", "PLAN_PRO")
        .choice("Team", "PLAN_TEAM")
        .build()
        .unwrap();
    w.support
        .reply(&w.ann, Reply::new(question, [Channel::Messenger]))
        .await
        .unwrap();
    let buttons = &w.graph.sent()[0].body["message"]["attachment"]["payload"]["buttons"];
    assert_eq!(buttons.as_array().map(Vec::len), Some(3));

    w.clock.advance(Duration::from_secs(30));
    w.deliver(&FakeUser::new(PAGE, PSID).postback("m_pb", "Pro", "PLAN_PRO", w.clock.now()))
        .await;
    match &w.conversation().await.last().unwrap().content {
        EntryContent::Incoming(i) => {
            assert_eq!(i.choice.as_deref(), Some("PLAN_PRO"));
            assert_eq!(i.text.as_deref(), Some("Pro"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn receipts_by_id_and_by_watermark_each_work_and_stop_where_they_should() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;
    let user = FakeUser::new(PAGE, PSID);
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        if i > 0 {
            w.clock.advance(Duration::from_secs(10));
        }
        w.support
            .reply(&w.ann, Reply::new(text(t), [Channel::Messenger]))
            .await
            .unwrap();
    }
    let mids: Vec<String> = w
        .graph
        .sent()
        .iter()
        .filter_map(|s| s.message_id.clone())
        .collect();
    let statuses = |c: &[Entry]| c[1..].iter().map(|e| outgoing(e)[0].1).collect::<Vec<_>>();

    // By id only (no watermark): just the named message.
    let by_id = serde_json::json!({"object":"page","entry":[{"id":PAGE,"time":w.clock.now().as_millis(),"messaging":[
        {"sender":{"id":PSID},"recipient":{"id":PAGE},"delivery":{"mids":[mids[1]]}}]}]});
    w.deliver(&by_id).await;
    use DeliveryStatus::*;
    assert_eq!(statuses(&w.conversation().await), [Sent, Delivered, Sent]);

    // By watermark only: everything sent at or before it.
    let first_sent = w.conversation().await[1].at;
    let by_watermark = serde_json::json!({"object":"page","entry":[{"id":PAGE,"time":w.clock.now().as_millis(),"messaging":[
        {"sender":{"id":PSID},"recipient":{"id":PAGE},"delivery":{"watermark":first_sent.as_millis()}}]}]});
    w.deliver(&by_watermark).await;
    assert_eq!(
        statuses(&w.conversation().await),
        [Delivered, Delivered, Sent]
    );

    // A read watermark between the second and third reply leaves the third unread.
    let second_sent = w.conversation().await[2].at;
    w.deliver(&user.read(second_sent.saturating_add(Duration::from_secs(1))))
        .await;
    assert_eq!(statuses(&w.conversation().await), [Read, Read, Sent]);
}

#[tokio::test]
async fn attachments_land_as_references_with_their_transport_id() {
    let w = World::new().await;
    let now = w.clock.now().as_millis();
    let body = serde_json::json!({"object":"page","entry":[{"id":PAGE,"time":now,"messaging":[
        {"sender":{"id":PSID},"recipient":{"id":PAGE},"timestamp":now,"message":{"mid":"m_att","text":"my certificate",
         "attachments":[{"type":"file","payload":{"url":"https://cdn.example/cert.pdf"}},{"type":"image","payload":{"url":"https://cdn.example/p.png"}}]}}]}]});
    w.deliver(&body).await;
    match &w.conversation().await[0].content {
        EntryContent::Incoming(i) => {
            assert_eq!(i.message_id.as_deref(), Some("m_att"));
            assert_eq!(i.text.as_deref(), Some("my certificate"));
            let urls: Vec<Option<&str>> = i.attachments.iter().map(|a| a.url.as_deref()).collect();
            assert_eq!(
                urls,
                [
                    Some("https://cdn.example/cert.pdf"),
                    Some("https://cdn.example/p.png")
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn agent_replies_offer_at_most_three_choices_and_each_transport_once() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;
    let four = (0..4)
        .fold(Message::builder("Pick"), |b, i| {
            b.choice(format!("c{i}"), format!("p{i}"))
        })
        .build()
        .unwrap();
    let refused = w
        .support
        .reply(&w.ann, Reply::new(four, [Channel::Messenger]))
        .await;
    assert!(matches!(
        refused,
        Err(tidings::inbox::SupportError::TooManyChoices(4))
    ));
    assert!(w.graph.sent().is_empty());

    let report = w
        .support
        .reply(
            &w.ann,
            Reply::new(
                text("once"),
                [Channel::Messenger, Channel::Messenger, Channel::Email],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        report.deliveries.len(),
        2,
        "a channel ticked twice is sent once"
    );
    assert_eq!(w.graph.sent().len(), 1);
}

#[tokio::test]
async fn a_split_reply_that_fails_part_way_keeps_the_ids_that_went_out() {
    let w = World::new().await;
    w.ann_writes("m_1", "Hi").await;
    let long = (0..700)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    w.graph.fail_every(2, GraphFault::unavailable_user());
    let report = w
        .support
        .reply(&w.ann, Reply::new(text(&long), [Channel::Messenger]))
        .await
        .unwrap();
    let record = &report.deliveries[0];
    assert_eq!(record.status, DeliveryStatus::Failed);
    let first = w.graph.sent()[0].message_id.clone().unwrap();
    assert_eq!(
        record.message_ids,
        [first],
        "the part that went out stays on record"
    );
    assert!(
        record.reason.as_deref().unwrap_or("").contains("part 2"),
        "{record:?}"
    );
}
