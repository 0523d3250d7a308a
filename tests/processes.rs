//! Flows end to end over loopback: the Hub hosts the webhook on a real HTTP server, a simulated
//! Messenger user taps buttons and types answers, and the flow engine asks its questions
//! through the Messenger transport to the fake Graph API.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, ContactId, NewContact},
    hub::{Hub, Routed},
    identity::{Connector, Directory},
    inbox::{EntryContent, Inbox},
    keys::{KeyRing, SigningKey},
    message::ChoiceStyle,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    process::{
        FlowEngine, FlowId, IgnoredAnswer, InstanceStatus, ProcessEngine, ProcessError,
        ProcessStore, flow::Flow,
    },
    secrecy::SecretSlice,
    store::memory::{
        MemoryDirectory, MemoryInbox, MemoryLastInbound, MemoryProcessStore, MemorySeenEvents,
    },
    testkit::{graph::FakeGraph, user::FakeUser},
    token::Tokens,
    transport::{DeliveryErrorKind, Intent, stub::StubTransport},
};

const PAGE: &str = "104812345678901";
const SECRET: &str = "process-test-app-secret";

/// The README's example flow, as JSON: a question with 3 answers leading to 3 follow-ups, one
/// with a wait and a second question.
const CHECK_IN: &str = r#"{
  "id": "check-in",
  "version": 1,
  "start": "ask",
  "blocks": [
    {"id": "ask", "type": "question", "text": "Hi {{ first_name }}, how is the course going?",
     "options": [{"label": "Great", "next": "great"},
                 {"label": "Too fast", "next": "slow"},
                 {"label": "I'm stuck", "next": "stuck"}],
     "timeout": {"after_secs": 172800, "next": "nudge"}},
    {"id": "great", "type": "send", "text": "Wonderful! Lesson 4 is open.", "next": "done"},
    {"id": "slow", "type": "send", "text": "Take your time. I'll check in again later.", "next": "pause"},
    {"id": "pause", "type": "wait", "secs": 10800, "next": "again"},
    {"id": "again", "type": "question", "text": "Better now?",
     "options": [{"label": "Yes", "next": "done"}, {"label": "Not really", "next": "stuck"}]},
    {"id": "stuck", "type": "handover", "text": "A tutor will answer you here.", "next": "done"},
    {"id": "nudge", "type": "send", "text": "We miss you! Reply any time.", "next": "done"},
    {"id": "done", "type": "end"}
  ]
}"#;

struct World {
    clock: ManualClock,
    graph: FakeGraph,
    directory: Arc<MemoryDirectory>,
    inbox: Arc<MemoryInbox>,
    store: Arc<MemoryProcessStore>,
    engine: FlowEngine,
    url: String,
    secret: AppSecret,
    routed: Arc<Mutex<Vec<Routed>>>,
    server: tokio::task::JoinHandle<()>,
    // Kept to rebuild the Hub on "restart".
    pages: Arc<StaticPages>,
    last: Arc<MemoryLastInbound>,
    seen: Arc<MemorySeenEvents>,
    /// An e-mail transport the engine falls back to, when set before `boot`.
    email: Option<Arc<StubTransport>>,
    /// Flows defined at boot besides the check-in.
    flows: Vec<Flow>,
}

fn keys() -> KeyRing {
    KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![11u8; 32])).unwrap())
}

fn check_in() -> Flow {
    serde_json::from_str(CHECK_IN).unwrap()
}

fn flow() -> FlowId {
    FlowId::new("check-in").unwrap()
}

impl World {
    async fn new(style: ChoiceStyle) -> World {
        let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
        let graph = FakeGraph::builder()
            .page(PAGE, "page-token")
            .clock(clock.shared())
            .start()
            .await
            .unwrap();
        let pages = Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("page-token"),
        )]));
        let mut w = World {
            clock,
            graph,
            directory: Arc::new(MemoryDirectory::new()),
            inbox: Arc::new(MemoryInbox::new()),
            store: Arc::new(MemoryProcessStore::new()),
            engine: FlowEngine::builder(
                Arc::new(MemoryProcessStore::new()),
                Arc::new(MemoryDirectory::new()),
                keys(),
            )
            .build(),
            url: String::new(),
            secret: AppSecret::new(SECRET),
            routed: Arc::default(),
            server: tokio::spawn(async {}),
            pages,
            last: Arc::new(MemoryLastInbound::new()),
            seen: Arc::new(MemorySeenEvents::new()),
            email: None,
            flows: Vec::new(),
        };
        w.boot(style).await;
        w
    }

    /// Starts (or restarts) the host process: a new engine over the same stores, the flows
    /// defined again, a new Hub behind a new HTTP server.
    async fn boot(&mut self, style: ChoiceStyle) {
        self.server.abort();
        let messenger = Arc::new(
            MessengerTransport::builder(self.pages.clone(), self.last.clone())
                .base_url(self.graph.base_url())
                .clock(self.clock.shared())
                .build()
                .unwrap(),
        );
        let mut engine = FlowEngine::builder(self.store.clone(), self.directory.clone(), keys())
            .record_in(self.inbox.clone())
            .transport(messenger.clone())
            .clock(self.clock.shared())
            .choice_style(style);
        if let Some(email) = &self.email {
            engine = engine.transport(email.clone());
        }
        self.engine = engine.build();
        self.engine.define(check_in()).unwrap();
        for flow in &self.flows {
            self.engine.define(flow.clone()).unwrap();
        }
        let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap())
            .with_clock(self.clock.shared());
        let connector = Connector::builder(self.directory.clone(), self.seen.clone(), tokens)
            .clock(self.clock.shared())
            .build();
        let hub = Arc::new(
            Hub::builder(connector, self.directory.clone(), self.inbox.clone())
                .processes(Arc::new(self.engine.clone()))
                .transport(messenger)
                .build(),
        );
        let webhook = Arc::new(
            Webhook::builder(
                self.secret.clone(),
                VerifyToken::new("verify"),
                self.pages.clone(),
                self.seen.clone(),
                self.last.clone(),
            )
            .clock(self.clock.shared())
            .build(),
        );
        let routed = self.routed.clone();
        let app = axum::Router::new().route(
            "/webhook",
            axum::routing::any(move |request: axum::extract::Request| {
                let (hub, webhook, routed) = (hub.clone(), webhook.clone(), routed.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, 2 * 1024 * 1024)
                        .await
                        .unwrap_or_default();
                    let handled = hub
                        .handle(&webhook, &http::Request::from_parts(parts, body))
                        .await;
                    routed
                        .lock()
                        .unwrap()
                        .extend(handled.routed.into_iter().map(|(_, r)| r));
                    handled.response.map(axum::body::Body::from)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        self.url = format!("http://{}/webhook", listener.local_addr().unwrap());
        self.server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    /// A linked contact who has just written to the Page (so the messaging window is open).
    async fn student(&self, psid: &str, first_name: &str) -> ContactId {
        self.student_with(psid, first_name, None).await
    }

    /// [`student`](Self::student), with one more address.
    async fn student_with(
        &self,
        psid: &str,
        first_name: &str,
        extra: Option<Address>,
    ) -> ContactId {
        let mut contact = NewContact::new()
            .with_name(first_name, "Lee")
            .with_address(Address::messenger(PAGE, psid).unwrap());
        if let Some(address) = extra {
            contact = contact.with_address(address);
        }
        let id = self.directory.create(contact).await.unwrap().id;
        self.say(psid, |u, at| {
            u.text(&format!("m-hello-{psid}"), "Hello", at)
        })
        .await;
        id
    }

    /// The user `psid` posts the event `build` makes; returns what the Hub did with it.
    async fn say(&self, psid: &str, build: impl FnOnce(&FakeUser, Timestamp) -> Value) -> Routed {
        self.clock.advance(Duration::from_secs(1));
        let at = self.clock.now();
        self.graph.user_wrote(PAGE, psid, at);
        let body = build(&FakeUser::new(PAGE, psid), at);
        let before = self.routed.lock().unwrap().len();
        let (status, _) = FakeUser::post(&self.url, &body, &self.secret)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let routed = self.routed.lock().unwrap();
        assert_eq!(routed.len(), before + 1, "one event routed");
        routed[before].clone()
    }

    /// The last message sent to `psid`: its text and its choices (title, payload), from a button
    /// template or quick replies.
    fn last_to(&self, psid: &str) -> (String, Vec<(String, String)>) {
        let sent = self.graph.sent();
        let last = sent.iter().rev().find(|s| s.recipient == psid).unwrap();
        let message = &last.body["message"];
        let (text, choices) = match message.get("attachment") {
            Some(a) => (&a["payload"]["text"], &a["payload"]["buttons"]),
            None => (&message["text"], &message["quick_replies"]),
        };
        let choices = choices
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        (
                            c["title"].as_str().unwrap().to_owned(),
                            c["payload"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (text.as_str().unwrap_or_default().to_owned(), choices)
    }

    fn sent_to(&self, psid: &str) -> usize {
        self.graph
            .sent()
            .iter()
            .filter(|s| s.recipient == psid)
            .count()
    }

    async fn tick(&self) -> tidings::process::TickReport {
        self.engine.tick(self.clock.now()).await.unwrap()
    }
}

fn payload_of(choices: &[(String, String)], title: &str) -> String {
    choices.iter().find(|(t, _)| t == title).unwrap().1.clone()
}

#[tokio::test]
async fn the_readme_flow_runs_every_path_over_messenger() {
    let w = World::new(ChoiceStyle::Buttons).await;

    // Ann: "Great" (a button).
    let ann = w.student("ann", "Ann").await;
    let ann_run = w.engine.start(&flow(), &ann).await.unwrap();
    let (text, buttons) = w.last_to("ann");
    assert_eq!(text, "Hi Ann, how is the course going?");
    let titles: Vec<_> = buttons.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Great", "Too fast", "I'm stuck"]);
    let sent = w.graph.sent();
    let question = sent.iter().rev().find(|s| s.recipient == "ann").unwrap();
    assert_eq!(
        question.body["message"]["attachment"]["payload"]["template_type"],
        "button"
    );
    assert!(buttons.iter().all(|(_, p)| p.len() < 100));
    let great = payload_of(&buttons, "Great");
    let routed = w
        .say("ann", |u, at| u.postback("m-ann-1", "Great", &great, at))
        .await;
    assert!(matches!(routed, Routed::Process { instance, .. } if instance == ann_run));
    assert_eq!(w.last_to("ann").0, "Wonderful! Lesson 4 is open.");
    let done = w.store.get(&ann_run).await.unwrap().unwrap();
    assert_eq!(done.status, InstanceStatus::Finished);
    // What the flow said is in Ann's conversation, by the flow, with its Messenger delivery;
    // her answer was the flow's, not the inbox's.
    let said: Vec<(String, Option<String>, String)> = w
        .inbox
        .conversation(&ann, 10)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.content {
            tidings::inbox::EntryContent::Outgoing(out) => Some((
                out.message.text_body().to_owned(),
                out.author,
                out.deliveries[0].channel.to_string(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [
            (
                "Hi Ann, how is the course going?".to_owned(),
                Some("flow:check-in".to_owned()),
                "messenger".to_owned()
            ),
            (
                "Wonderful! Lesson 4 is open.".to_owned(),
                Some("flow:check-in".to_owned()),
                "messenger".to_owned()
            ),
        ]
    );

    // Bob: "Too fast", typed; a wait; the second question; "yes", typed.
    let bob = w.student("bob", "Bob").await;
    let bob_run = w.engine.start(&flow(), &bob).await.unwrap();
    let routed = w
        .say("bob", |u, at| u.text("m-bob-1", "too FAST", at))
        .await;
    assert!(matches!(routed, Routed::Process { instance, .. } if instance == bob_run));
    assert_eq!(
        w.last_to("bob").0,
        "Take your time. I'll check in again later."
    );
    w.clock.advance(Duration::from_secs(3 * 3600 - 60));
    assert_eq!(w.tick().await.waits, 0);
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(w.tick().await.waits, 1);
    let (text, buttons) = w.last_to("bob");
    assert_eq!(text, "Better now?");
    assert_eq!(buttons.len(), 2);
    let routed = w.say("bob", |u, at| u.text("m-bob-2", "Yes!", at)).await;
    assert!(matches!(routed, Routed::Process { .. }));
    let bob_done = w.store.get(&bob_run).await.unwrap().unwrap();
    let steps: Vec<_> = bob_done.history.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, ["ask", "slow", "pause", "again", "done"]);

    // Cid: "I'm stuck" -> a human; what she writes goes to the inbox until released.
    let cid = w.student("cid", "Cid").await;
    let cid_run = w.engine.start(&flow(), &cid).await.unwrap();
    let stuck = payload_of(&w.last_to("cid").1, "I'm stuck");
    w.say("cid", |u, at| {
        u.postback("m-cid-1", "I'm stuck", &stuck, at)
    })
    .await;
    assert_eq!(w.last_to("cid").0, "A tutor will answer you here.");
    let routed = w
        .say("cid", |u, at| {
            u.text("m-cid-2", "Lesson 3, exercise 2 fails", at)
        })
        .await;
    assert!(matches!(routed, Routed::Inbox { contact, .. } if contact == cid));
    let conversation = w.inbox.conversation(&cid, 10).await.unwrap();
    assert!(conversation.iter().any(|e| matches!(
        &e.content,
        EntryContent::Incoming(i) if i.text.as_deref() == Some("Lesson 3, exercise 2 fails")
    )));
    assert_eq!(w.engine.release(&cid).await.unwrap(), vec![cid_run.clone()]);
    let cid_done = w.store.get(&cid_run).await.unwrap().unwrap();
    assert_eq!(cid_done.status, InstanceStatus::Finished);
}

#[tokio::test]
async fn quick_replies_when_configured_and_answered_by_a_quick_reply_tap() {
    let w = World::new(ChoiceStyle::QuickReplies).await;
    let ann = w.student("ann", "Ann").await;
    let run = w.engine.start(&flow(), &ann).await.unwrap();
    let sent = w.graph.sent();
    let question = sent.iter().rev().find(|s| s.recipient == "ann").unwrap();
    assert_eq!(
        question.body["message"]["quick_replies"][2]["title"],
        "I'm stuck"
    );
    let (_, replies) = w.last_to("ann");
    let great = payload_of(&replies, "Great");
    let routed = w
        .say("ann", |u, at| u.quick_reply("m-1", "Great", &great, at))
        .await;
    assert!(matches!(routed, Routed::Process { instance, .. } if instance == run));
    assert_eq!(w.last_to("ann").0, "Wonderful! Lesson 4 is open.");
}

#[tokio::test]
async fn stale_forged_and_double_tapped_answers_move_nothing_and_are_reported() {
    let w = World::new(ChoiceStyle::Buttons).await;
    let ann = w.student("ann", "Ann").await;
    let run = w.engine.start(&flow(), &ann).await.unwrap();
    let (_, first) = w.last_to("ann");
    let slow = payload_of(&first, "Too fast");

    w.say("ann", |u, at| u.postback("m-1", "Too fast", &slow, at))
        .await;
    let sends = w.sent_to("ann");
    // The double tap arrives as a second postback with its own mid.
    let routed = w
        .say("ann", |u, at| u.postback("m-2", "Too fast", &slow, at))
        .await;
    assert_eq!(
        routed,
        Routed::AnswerIgnored {
            contact: ann.clone(),
            instance: Some(run.clone()),
            reason: IgnoredAnswer::Duplicate
        }
    );
    // A button of the answered question.
    let great = payload_of(&first, "Great");
    let routed = w
        .say("ann", |u, at| u.postback("m-3", "Great", &great, at))
        .await;
    assert!(matches!(
        routed,
        Routed::AnswerIgnored {
            reason: IgnoredAnswer::Stale,
            ..
        }
    ));
    // A forged payload, in a postback and in a quick reply.
    let mut forged = great.clone();
    forged.replace_range(10..11, if &forged[10..11] == "A" { "B" } else { "A" });
    for routed in [
        w.say("ann", |u, at| u.postback("m-4", "Great", &forged, at))
            .await,
        w.say("ann", |u, at| u.quick_reply("m-5", "Great", &forged, at))
            .await,
    ] {
        assert_eq!(
            routed,
            Routed::AnswerIgnored {
                contact: ann.clone(),
                instance: None,
                reason: IgnoredAnswer::Forged
            }
        );
    }
    assert_eq!(w.sent_to("ann"), sends, "nothing was sent for them");
    let inst = w.store.get(&run).await.unwrap().unwrap();
    assert_eq!(inst.step, "pause", "the flow moved once");
    let incoming = w
        .inbox
        .conversation(&ann, 20)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.content, tidings::inbox::EntryContent::Incoming(_)))
        .count();
    assert_eq!(
        incoming, 1,
        "only the hello is in the inbox: ignored answers are not recorded"
    );

    // After the flow finished, a button of any of its questions is reported as such.
    w.clock.advance(Duration::from_secs(3 * 3600));
    w.tick().await;
    let yes = payload_of(&w.last_to("ann").1, "Yes");
    w.say("ann", |u, at| u.postback("m-6", "Yes", &yes, at))
        .await;
    let no = payload_of(&w.last_to_question(), "Not really");
    let routed = w
        .say("ann", |u, at| u.postback("m-7", "Not really", &no, at))
        .await;
    assert!(matches!(
        routed,
        Routed::AnswerIgnored {
            reason: IgnoredAnswer::Finished,
            ..
        }
    ));
}

impl World {
    /// The choices of the last question sent (the last message with choices).
    fn last_to_question(&self) -> Vec<(String, String)> {
        self.graph
            .sent()
            .iter()
            .rev()
            .filter_map(|s| {
                let buttons = s.body["message"]["attachment"]["payload"]["buttons"].as_array()?;
                Some(
                    buttons
                        .iter()
                        .map(|b| {
                            (
                                b["title"].as_str().unwrap_or_default().to_owned(),
                                b["payload"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                )
            })
            .next()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn no_answer_within_the_timeout_takes_the_timeout_path() {
    let w = World::new(ChoiceStyle::Buttons).await;
    let ann = w.student("ann", "Ann").await;
    let run = w.engine.start(&flow(), &ann).await.unwrap();
    // The Page may message her: she wrote within the last day.
    w.clock.advance(Duration::from_secs(2 * 86_400 - 3600));
    w.say("ann", |u, at| u.text("m-1", "still reading", at))
        .await;
    assert_eq!(w.tick().await.timeouts, 0);
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(w.tick().await.timeouts, 1);
    assert_eq!(w.last_to("ann").0, "We miss you! Reply any time.");
    assert_eq!(
        w.store.get(&run).await.unwrap().unwrap().status,
        InstanceStatus::Finished
    );
}

#[tokio::test]
async fn a_restarted_host_resumes_mid_flow_from_the_store() {
    let mut w = World::new(ChoiceStyle::Buttons).await;
    let bob = w.student("bob", "Bob").await;
    let run = w.engine.start(&flow(), &bob).await.unwrap();
    let slow = payload_of(&w.last_to("bob").1, "Too fast");
    w.say("bob", |u, at| u.postback("m-1", "Too fast", &slow, at))
        .await;

    // The host restarts during the wait: new engine, new Hub, same stores.
    w.boot(ChoiceStyle::Buttons).await;
    w.clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(w.tick().await.waits, 1);
    let (text, buttons) = w.last_to("bob");
    assert_eq!(text, "Better now?");
    let yes = payload_of(&buttons, "Yes");
    let routed = w
        .say("bob", |u, at| u.postback("m-2", "Yes", &yes, at))
        .await;
    assert!(matches!(routed, Routed::Process { instance, .. } if instance == run));
    assert_eq!(
        w.store.get(&run).await.unwrap().unwrap().status,
        InstanceStatus::Finished
    );
}

#[tokio::test]
async fn a_question_sent_again_after_a_crash_counts_once_whichever_copy_is_answered() {
    let mut w = World::new(ChoiceStyle::Buttons).await;
    let ann = w.student("ann", "Ann").await;
    let run = w.engine.start(&flow(), &ann).await.unwrap();
    let (_, first_copy) = w.last_to("ann");

    // Simulate the crash window: the instance is stored as "asking" (running, with a lease),
    // as it is between the write and the confirmation of a send.
    let mut inst = w.store.get(&run).await.unwrap().unwrap();
    inst.status = InstanceStatus::Running;
    inst.due_at = Some(w.clock.now());
    w.store.update(&inst).await.unwrap();
    w.boot(ChoiceStyle::Buttons).await;
    assert_eq!(w.tick().await.resumed, 1);
    let (_, second_copy) = w.last_to("ann");
    assert_eq!(
        first_copy, second_copy,
        "the same buttons, the same payloads"
    );
    assert_eq!(w.sent_to("ann"), 2, "asked once more");

    let great = payload_of(&second_copy, "Great");
    let routed = w
        .say("ann", |u, at| u.postback("m-1", "Great", &great, at))
        .await;
    assert!(matches!(routed, Routed::Process { .. }));
    let great_again = payload_of(&first_copy, "Great");
    let routed = w
        .say("ann", |u, at| u.postback("m-2", "Great", &great_again, at))
        .await;
    assert!(matches!(
        routed,
        Routed::AnswerIgnored {
            reason: IgnoredAnswer::Duplicate,
            ..
        }
    ));
    assert_eq!(w.sent_to("ann"), 3, "one follow-up");
}

/// Two days without a word from the contact: Messenger's 24-hour window is closed when the
/// flow speaks again. A tag purpose still goes over Messenger, `Update` falls to e-mail when
/// the engine has an e-mail transport, and with neither the instance fails and `tick` says so.
#[tokio::test]
async fn after_the_window_closed_a_flow_speaks_by_its_purpose_or_falls_back_or_fails() {
    const TWO_DAYS: Duration = Duration::from_secs(2 * 86_400);

    // A tag purpose: the access reminder after a purchase goes over Messenger, tagged.
    let access = Flow::builder(FlowId::new("access").unwrap(), 1)
        .purpose(Intent::PostPurchase)
        .wait("later", TWO_DAYS, "remind")
        .send(
            "remind",
            "Your course access is ready, {{ first_name }}.",
            "done",
        )
        .end("done")
        .build();
    let mut w = World::new(ChoiceStyle::Buttons).await;
    w.flows.push(access);
    w.boot(ChoiceStyle::Buttons).await;
    let ann = w.student("ann", "Ann").await;
    let run = w
        .engine
        .start(&FlowId::new("access").unwrap(), &ann)
        .await
        .unwrap();
    let before = w.sent_to("ann");
    w.clock.advance(TWO_DAYS);
    let report = w.tick().await;
    assert_eq!((report.waits, report.failures.len()), (1, 0), "{report:?}");
    assert_eq!(w.sent_to("ann"), before + 1);
    let sent = w.graph.sent();
    let remind = sent.iter().rev().find(|s| s.recipient == "ann").unwrap();
    assert_eq!(remind.body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(remind.body["tag"], "POST_PURCHASE_UPDATE");
    assert_eq!(
        w.store.get(&run).await.unwrap().unwrap().status,
        InstanceStatus::Finished
    );

    // `Update` (the check-in's nudge) with an e-mail transport after Messenger: by e-mail.
    let email = Arc::new(StubTransport::new(Channel::Email).with_clock(w.clock.shared()));
    let mut w = World::new(ChoiceStyle::Buttons).await;
    w.email = Some(email.clone());
    w.boot(ChoiceStyle::Buttons).await;
    let bob = w
        .student_with(
            "bob",
            "Bob",
            Some(Address::email("bob@example.org").unwrap()),
        )
        .await;
    let run = w.engine.start(&flow(), &bob).await.unwrap();
    assert_eq!(w.last_to("bob").0, "Hi Bob, how is the course going?");
    assert!(email.sent().is_empty(), "the question went over Messenger");
    w.clock.advance(TWO_DAYS);
    let report = w.tick().await;
    assert_eq!(
        (report.timeouts, report.failures.len()),
        (1, 0),
        "{report:?}"
    );
    let mailed = email.sent();
    assert_eq!(mailed.len(), 1);
    assert_eq!(
        mailed[0].message.text_body(),
        "We miss you! Reply any time."
    );
    assert_eq!(mailed[0].to, Address::email("bob@example.org").unwrap());
    assert_eq!(mailed[0].ctx.intent, Intent::Update);
    assert_eq!(
        w.store.get(&run).await.unwrap().unwrap().status,
        InstanceStatus::Finished
    );

    // Neither: the nudge cannot go out; the instance fails and tick reports it.
    let w = World::new(ChoiceStyle::Buttons).await;
    let cid = w.student("cid", "Cid").await;
    let run = w.engine.start(&flow(), &cid).await.unwrap();
    let before = w.sent_to("cid");
    w.clock.advance(TWO_DAYS);
    let report = w.tick().await;
    assert_eq!(report.timeouts, 0, "{report:?}");
    assert!(
        matches!(
            &report.failures[..],
            [(id, ProcessError::Delivery(e))] if *id == run && e.kind() == DeliveryErrorKind::WindowClosed
        ),
        "{report:?}"
    );
    assert_eq!(
        w.sent_to("cid"),
        before,
        "Messenger refused before any call"
    );
    assert_eq!(
        w.store.get(&run).await.unwrap().unwrap().status,
        InstanceStatus::Failed
    );
    assert_eq!(w.tick().await.failures.len(), 0, "reported once");
}
