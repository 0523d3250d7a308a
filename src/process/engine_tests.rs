//! Unit tests of the reference engine over the in-memory stores and the stub transport. The
//! end-to-end runs over Messenger on loopback are in `tests/processes.rs`.

use std::{sync::Arc, time::Duration};

use secrecy::SecretSlice;
use serde_json::json;

use super::*;
use crate::{
    clock::{Clock, ManualClock},
    contact::{Address, Channel, NewContact},
    keys::{KeyRing, SigningKey},
    message::Choice,
    process::flow::FreeText,
    store::memory::{MemoryDirectory, MemoryProcessStore},
    transport::{Capabilities, DeliveryErrorKind, stub::StubTransport},
};

const PAGE: &str = "p1";

struct World {
    clock: ManualClock,
    store: Arc<MemoryProcessStore>,
    directory: Arc<MemoryDirectory>,
    stub: Arc<StubTransport>,
    engine: FlowEngine,
    ann: ContactId,
}

fn keys() -> KeyRing {
    KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![3u8; 32])).unwrap())
}

fn messenger_like() -> Capabilities {
    Capabilities::text_only()
        .with_choices(13, Some(20))
        .with_buttons(3)
}

fn flow_id(id: &str) -> FlowId {
    FlowId::new(id).unwrap()
}

/// The README's flow: a question with 3 answers leading to 3 follow-ups, one of them with a wait
/// and a second question.
fn check_in(version: u32) -> Flow {
    Flow::builder(flow_id("check-in"), version)
        .question(
            "ask",
            "Hi {{ first_name }}, how is the course going?",
            |q| {
                q.option("Great", "great")
                    .option("Too fast", "slow")
                    .option("I'm stuck", "stuck")
                    .timeout(Duration::from_secs(2 * 86_400), "nudge")
            },
        )
        .send("great", "Wonderful! Lesson 4 is open.", "done")
        .send("slow", "Take your time, we'll check in tomorrow.", "pause")
        .wait("pause", Duration::from_secs(86_400), "again")
        .question("again", "Better today?", |q| {
            q.option("Yes", "done").option("Not really", "stuck")
        })
        .handover("stuck", Some("A tutor will answer you here."), "done")
        .send("nudge", "We miss you! Reply any time.", "done")
        .end("done")
        .build()
}

impl World {
    async fn new() -> World {
        World::with(|b| b).await
    }

    async fn with(configure: impl FnOnce(FlowEngineBuilder) -> FlowEngineBuilder) -> World {
        let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
        let store = Arc::new(MemoryProcessStore::new());
        let directory = Arc::new(MemoryDirectory::new());
        let stub = Arc::new(
            StubTransport::new(Channel::Messenger)
                .with_capabilities(messenger_like())
                .with_clock(clock.shared()),
        );
        let ann = directory
            .create(
                NewContact::new()
                    .with_name("Ann", "Lee")
                    .with_field("plan", "pro")
                    .with_address(Address::messenger(PAGE, "ann-psid").unwrap()),
            )
            .await
            .unwrap()
            .id;
        let engine = configure(
            FlowEngine::builder(store.clone(), directory.clone(), keys())
                .transport(stub.clone())
                .clock(clock.shared()),
        )
        .build();
        engine.define(check_in(1)).unwrap();
        World {
            clock,
            store,
            directory,
            stub,
            engine,
            ann,
        }
    }

    fn last(&self) -> Message {
        self.stub.sent().last().unwrap().message.clone()
    }

    fn texts(&self) -> Vec<String> {
        self.stub
            .sent()
            .iter()
            .map(|s| s.message.text_body().to_owned())
            .collect()
    }

    async fn instance(&self, id: &InstanceId) -> ProcessInstance {
        self.store.get(id).await.unwrap().unwrap()
    }

    fn tap(&self, choice: &Choice) -> Inbound {
        Inbound::new(
            format!("tap-{}", choice.payload()),
            Address::messenger(PAGE, "ann-psid").unwrap(),
            self.clock.now(),
            InboundKind::Answer {
                message_id: None,
                payload: choice.payload().to_owned(),
                text: Some(choice.label().to_owned()),
            },
        )
    }

    fn typed(&self, text: &str) -> Inbound {
        Inbound::new(
            format!("text-{text}"),
            Address::messenger(PAGE, "ann-psid").unwrap(),
            self.clock.now(),
            InboundKind::Text {
                message_id: format!("m-{text}"),
                text: text.to_owned(),
            },
        )
    }

    async fn offer(&self, event: &Inbound) -> Offer {
        self.engine.offer(&self.ann, event).await.unwrap()
    }

    async fn start(&self) -> InstanceId {
        self.engine
            .start(&flow_id("check-in"), &self.ann)
            .await
            .unwrap()
    }
}

fn choice<'m>(m: &'m Message, label: &str) -> &'m Choice {
    m.choices().iter().find(|c| c.label() == label).unwrap()
}

#[tokio::test]
async fn a_question_goes_out_as_buttons_whose_payloads_name_the_step() {
    let w = World::new().await;
    let id = w.start().await;
    let question = w.last();
    assert_eq!(question.text_body(), "Hi Ann, how is the course going?");
    assert_eq!(question.style(), ChoiceStyle::Buttons);
    let labels: Vec<_> = question.choices().iter().map(Choice::label).collect();
    assert_eq!(labels, ["Great", "Too fast", "I'm stuck"]);
    for (i, c) in question.choices().iter().enumerate() {
        let p = AnswerPayload::verify(c.payload(), &keys()).unwrap();
        assert_eq!(
            (p.instance.clone(), p.visit, usize::from(p.option)),
            (id.clone(), 0, i)
        );
        assert!(c.payload().len() < 100);
    }
    let sent = &w.stub.sent()[0];
    assert_eq!(sent.ctx.intent, Intent::Update);
    assert_eq!(
        sent.ctx.idempotency_key.as_deref(),
        Some(format!("{id}:0").as_str())
    );

    let inst = w.instance(&id).await;
    assert_eq!(
        (inst.step.as_str(), inst.status),
        ("ask", InstanceStatus::Waiting)
    );
    assert_eq!(
        inst.due_at,
        Some(
            w.clock
                .now()
                .saturating_add(Duration::from_secs(2 * 86_400))
        )
    );
    assert!(matches!(
        w.engine.start(&flow_id("check-in"), &w.ann).await,
        Err(ProcessError::AlreadyRunning { .. })
    ));
}

#[tokio::test]
async fn quick_replies_when_configured() {
    let w = World::with(|b| b.choice_style(ChoiceStyle::QuickReplies)).await;
    w.start().await;
    assert_eq!(w.last().style(), ChoiceStyle::QuickReplies);
}

#[tokio::test]
async fn a_tap_moves_the_flow_on_the_chosen_path_and_a_double_tap_counts_once() {
    let w = World::new().await;
    let id = w.start().await;
    let question = w.last();
    let great = w.tap(choice(&question, "Great"));
    assert_eq!(
        w.offer(&great).await,
        Offer::Consumed {
            instance: id.clone()
        }
    );
    assert_eq!(w.texts().last().unwrap(), "Wonderful! Lesson 4 is open.");
    assert_eq!(w.stub.sent().last().unwrap().ctx.intent, Intent::Reply);
    let inst = w.instance(&id).await;
    assert_eq!(inst.status, InstanceStatus::Finished);
    let steps: Vec<_> = inst.history.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, ["ask", "great", "done"]);
    assert_eq!(inst.history[0].answer.as_deref(), Some("Great"));
    assert_eq!(inst.history[0].choice, Some(0));

    let sent = w.stub.sent().len();
    assert_eq!(
        w.offer(&great).await,
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Duplicate
        }
    );
    assert_eq!(
        w.offer(&w.tap(choice(&question, "Too fast"))).await,
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Finished
        }
    );
    assert_eq!(
        w.stub.sent().len(),
        sent,
        "nothing sent for an ignored answer"
    );
}

#[tokio::test]
async fn stale_forged_duplicate_and_foreign_answers_are_ignored_and_reported() {
    let w = World::new().await;
    let id = w.start().await;
    let first = w.last();
    assert!(matches!(
        w.offer(&w.tap(choice(&first, "Too fast"))).await,
        Offer::Consumed { .. }
    ));
    // The double tap: the same button again.
    assert_eq!(
        w.offer(&w.tap(choice(&first, "Too fast"))).await,
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Duplicate
        }
    );
    // Another button of the answered question.
    assert_eq!(
        w.offer(&w.tap(choice(&first, "Great"))).await,
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Stale
        }
    );
    // A payload signed with another key, and one altered.
    let forger = KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![9u8; 32])).unwrap());
    let forged = AnswerPayload::new(id.clone(), 1, 0).sign(&forger);
    let mut altered = choice(&first, "Great").payload().to_owned();
    altered.pop();
    for payload in [forged, altered] {
        let event = Inbound::new(
            "f",
            Address::messenger(PAGE, "ann-psid").unwrap(),
            w.clock.now(),
            InboundKind::Answer {
                message_id: None,
                payload,
                text: None,
            },
        );
        assert_eq!(
            w.offer(&event).await,
            Offer::Ignored {
                instance: None,
                reason: IgnoredAnswer::Forged
            }
        );
    }
    // Bob presents Ann's authentic button.
    let bob = w.directory.create(NewContact::new()).await.unwrap().id;
    assert_eq!(
        w.engine
            .offer(&bob, &w.tap(choice(&first, "Great")))
            .await
            .unwrap(),
        Offer::Ignored {
            instance: None,
            reason: IgnoredAnswer::WrongContact
        }
    );
    // A payload for an instance the store does not know.
    let ghost = AnswerPayload::new(InstanceId::new("ghost").unwrap(), 0, 0).sign(&keys());
    let event = Inbound::new(
        "g",
        Address::messenger(PAGE, "ann-psid").unwrap(),
        w.clock.now(),
        InboundKind::Answer {
            message_id: None,
            payload: ghost,
            text: None,
        },
    );
    assert_eq!(
        w.offer(&event).await,
        Offer::Ignored {
            instance: None,
            reason: IgnoredAnswer::UnknownInstance
        }
    );
    // The host's own buttons are not ours.
    let get_started = Inbound::new(
        "gs",
        Address::messenger(PAGE, "ann-psid").unwrap(),
        w.clock.now(),
        InboundKind::Answer {
            message_id: None,
            payload: "GET_STARTED".into(),
            text: None,
        },
    );
    assert_eq!(w.offer(&get_started).await, Offer::NotConsumed);
    let inst = w.instance(&id).await;
    assert_eq!(inst.step, "pause", "none of them moved the flow");
}

/// Both answers read the instance before either writes: the store holds the first two `get`s
/// at a barrier, so the interleaving that needs the compare-and-swap happens every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_answers_processed_at_once_move_the_instance_once() {
    async fn both(w: &Arc<World>, a: Inbound, b: Inbound) -> [Offer; 2] {
        let engine = w.engine_over(Gated::new(w.store.clone(), 2), true);
        let (ea, eb, ann_a, ann_b) = (engine.clone(), engine, w.ann.clone(), w.ann.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { ea.offer(&ann_a, &a).await.unwrap() }),
            tokio::spawn(async move { eb.offer(&ann_b, &b).await.unwrap() })
        );
        [ra.unwrap(), rb.unwrap()]
    }
    for round in 0..5 {
        let w = Arc::new(World::new().await);
        let id = w.start().await;
        let question = w.last();
        let (a, b) = (
            w.tap(choice(&question, "Great")),
            w.tap(choice(&question, "Too fast")),
        );
        let outcomes = both(&w, a, b).await;
        let moved = outcomes
            .iter()
            .filter(|o| matches!(o, Offer::Consumed { .. }))
            .count();
        assert_eq!(moved, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().any(|o| matches!(
                o,
                Offer::Ignored {
                    reason: IgnoredAnswer::Stale | IgnoredAnswer::Finished,
                    ..
                }
            )),
            "round {round}: {outcomes:?}"
        );
        // Exactly one follow-up went out.
        assert_eq!(w.stub.sent().len(), 2, "round {round}: {:?}", w.texts());
        let inst = w.instance(&id).await;
        assert_eq!(
            inst.history.iter().filter(|r| r.choice.is_some()).count(),
            1
        );

        // The same button twice at once: one moves, one is a duplicate.
        let w = Arc::new(World::new().await);
        let id = w.start().await;
        let tap = w.tap(choice(&w.last(), "Too fast"));
        let mut outcomes = both(&w, tap.clone(), tap).await;
        outcomes.sort_by_key(|o| matches!(o, Offer::Ignored { .. }));
        assert_eq!(
            outcomes,
            [
                Offer::Consumed {
                    instance: id.clone()
                },
                Offer::Ignored {
                    instance: Some(id.clone()),
                    reason: IgnoredAnswer::Duplicate
                }
            ],
            "round {round}"
        );
        assert_eq!(w.stub.sent().len(), 2, "round {round}: {:?}", w.texts());
    }
}

#[tokio::test]
async fn typed_text_matching_a_label_answers_ignoring_case_and_accents() {
    let w = World::new().await;
    let id = w.start().await;
    assert_eq!(
        w.offer(&w.typed("  i'M STÜCK! ")).await,
        Offer::Consumed {
            instance: id.clone()
        }
    );
    assert_eq!(w.texts().last().unwrap(), "A tutor will answer you here.");
    let inst = w.instance(&id).await;
    assert_eq!(inst.history[0].answer.as_deref(), Some("I'm stuck"));
    assert_eq!(
        (inst.step.as_str(), inst.status),
        ("stuck", InstanceStatus::Waiting)
    );
}

#[tokio::test]
async fn free_text_goes_to_the_inbox_by_default_or_as_the_question_says() {
    // Default: the inbox, the question stays open.
    let w = World::new().await;
    let id = w.start().await;
    assert_eq!(
        w.offer(&w.typed("what is lesson 4 about?")).await,
        Offer::NotConsumed
    );
    assert_eq!(w.instance(&id).await.step, "ask");

    // Reprompt: asked again with the same buttons; an answer to either copy counts once.
    let w = World::new().await;
    let reprompt = Flow::builder(flow_id("survey"), 1)
        .question("q", "Ready?", |q| {
            q.option("Yes", "end").on_text(FreeText::Reprompt)
        })
        .end("end")
        .build();
    w.engine.define(reprompt).unwrap();
    let id = w.engine.start(&flow_id("survey"), &w.ann).await.unwrap();
    let first = w.last();
    assert_eq!(
        w.offer(&w.typed("hmm")).await,
        Offer::Consumed {
            instance: id.clone()
        }
    );
    let second = w.last();
    assert_eq!(first, second, "the same question, the same payloads");
    assert!(matches!(
        w.offer(&w.tap(&second.choices()[0])).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(
        w.offer(&w.tap(&first.choices()[0])).await,
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Duplicate
        }
    );

    // Goto: the text is the answer.
    let w = World::new().await;
    let goto = Flow::builder(flow_id("feedback"), 1)
        .question("q", "Rate us", |q| {
            q.option("Good", "end")
                .on_text(FreeText::Goto("thanks".into()))
        })
        .send("thanks", "Thanks for the words!", "end")
        .end("end")
        .build();
    w.engine.define(goto).unwrap();
    let id = w.engine.start(&flow_id("feedback"), &w.ann).await.unwrap();
    assert_eq!(
        w.offer(&w.typed("Loved lesson 3")).await,
        Offer::Consumed {
            instance: id.clone()
        }
    );
    let inst = w.instance(&id).await;
    assert_eq!(inst.history[0].answer.as_deref(), Some("Loved lesson 3"));
    assert_eq!(inst.history[0].choice, None);
    assert_eq!(w.texts().last().unwrap(), "Thanks for the words!");
}

#[tokio::test]
async fn waits_and_timeouts_move_on_only_when_ticked_past_their_time() {
    let w = World::new().await;
    let id = w.start().await;
    assert!(matches!(
        w.offer(&w.tap(choice(&w.last(), "Too fast"))).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(w.instance(&id).await.step, "pause");

    w.clock.advance(Duration::from_secs(86_399));
    let report = w.engine.tick(w.clock.now()).await.unwrap();
    assert_eq!(report.waits, 0);
    assert_eq!(w.instance(&id).await.step, "pause");

    w.clock.advance(Duration::from_secs(1));
    let report = w.engine.tick(w.clock.now()).await.unwrap();
    assert_eq!((report.waits, report.more), (1, false));
    assert_eq!(w.texts().last().unwrap(), "Better today?");
    assert_eq!(w.stub.sent().last().unwrap().ctx.intent, Intent::Update);
    let inst = w.instance(&id).await;
    assert_eq!((inst.step.as_str(), inst.due_at), ("again", None));

    // A question with a timeout.
    let w = World::new().await;
    let id = w.start().await;
    w.clock.advance(Duration::from_secs(2 * 86_400));
    let report = w.engine.tick(w.clock.now()).await.unwrap();
    assert_eq!(report.timeouts, 1);
    assert_eq!(w.texts().last().unwrap(), "We miss you! Reply any time.");
    let inst = w.instance(&id).await;
    assert_eq!(inst.status, InstanceStatus::Finished);
    assert_eq!(inst.history[0].answer, None);
    // A late tap on the timed-out question does not count.
    let question = w.stub.sent()[0].message.clone();
    assert!(matches!(
        w.offer(&w.tap(choice(&question, "Great"))).await,
        Offer::Ignored {
            reason: IgnoredAnswer::Finished,
            ..
        }
    ));
    assert_eq!(w.engine.tick(w.clock.now()).await.unwrap().timeouts, 0);
}

#[tokio::test]
async fn a_handover_sends_messages_to_the_inbox_until_released() {
    let w = World::new().await;
    let id = w.start().await;
    assert!(matches!(
        w.offer(&w.tap(choice(&w.last(), "I'm stuck"))).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(
        w.offer(&w.typed("great")).await,
        Offer::NotConsumed,
        "a human has the conversation"
    );
    assert_eq!(w.engine.release(&w.ann).await.unwrap(), vec![id.clone()]);
    assert_eq!(w.instance(&id).await.status, InstanceStatus::Finished);
    assert!(w.engine.release(&w.ann).await.unwrap().is_empty());
}

#[tokio::test]
async fn fields_set_by_a_flow_feed_its_branches_and_templates_and_reach_the_host() {
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<(ContactId, String, serde_json::Value)>>);
    #[async_trait]
    impl ContactFields for Recorded {
        async fn set_field(
            &self,
            c: &ContactId,
            n: &str,
            v: &serde_json::Value,
        ) -> Result<(), StoreError> {
            self.0
                .lock()
                .unwrap()
                .push((c.clone(), n.to_owned(), v.clone()));
            Ok(())
        }
    }
    let fields = Arc::new(Recorded::default());
    let w = World::with(|b| b.contact_fields(fields.clone())).await;
    let flow = Flow::builder(flow_id("level"), 1)
        .question("q", "Beginner or advanced?", |q| {
            q.option("Beginner", "set-b").option("Advanced", "set-a")
        })
        .set_field("set-b", "level", "beginner", "route")
        .set_field("set-a", "level", "advanced", "route")
        .branch("route", "other", |b| {
            b.field_equals("level", "advanced", "pro-check")
                .answered("q", "beginner", "basics")
        })
        .branch("pro-check", "other", |b| {
            b.field_equals("plan", json!("pro"), "pro")
        })
        .send("basics", "Start with lesson 1, {{ fields.level }}.", "end")
        .send(
            "pro",
            "Pro and {{ fields.level }}: skip to lesson 5.",
            "end",
        )
        .send("other", "Unexpected", "end")
        .end("end")
        .build();
    w.engine.define(flow).unwrap();
    let id = w.engine.start(&flow_id("level"), &w.ann).await.unwrap();
    assert!(matches!(
        w.offer(&w.tap(choice(&w.last(), "Advanced"))).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(
        w.texts().last().unwrap(),
        "Pro and advanced: skip to lesson 5."
    );
    assert_eq!(
        *fields.0.lock().unwrap(),
        [(w.ann.clone(), "level".to_owned(), json!("advanced"))]
    );
    assert_eq!(
        w.instance(&id).await.vars.get("level"),
        Some(&json!("advanced"))
    );

    let bob = w
        .directory
        .create(NewContact::new().with_address(Address::messenger(PAGE, "bob").unwrap()))
        .await
        .unwrap()
        .id;
    w.engine.start(&flow_id("level"), &bob).await.unwrap();
    let q = w.last();
    let tap = Inbound::new(
        "b1",
        Address::messenger(PAGE, "bob").unwrap(),
        w.clock.now(),
        InboundKind::Answer {
            message_id: None,
            payload: choice(&q, "Beginner").payload().to_owned(),
            text: None,
        },
    );
    assert!(matches!(
        w.engine.offer(&bob, &tap).await.unwrap(),
        Offer::Consumed { .. }
    ));
    assert_eq!(w.texts().last().unwrap(), "Start with lesson 1, beginner.");
}

#[tokio::test]
async fn running_instances_keep_their_version_when_the_flow_is_updated() {
    let w = World::new().await;
    let old = w.start().await;
    let old_question = w.last();

    let mut v2 = check_in(2);
    if let Some(crate::process::flow::BlockKind::Send { text, .. }) = v2
        .blocks
        .iter_mut()
        .find(|b| b.id == "great")
        .map(|b| &mut b.kind)
    {
        *text = "Version 2 says hi".into();
    }
    assert_eq!(w.engine.define(v2.clone()).unwrap(), 2);
    assert_eq!(
        w.engine.define(v2).unwrap(),
        2,
        "the same definition again is fine"
    );
    assert!(matches!(
        w.engine.define(check_in(2)),
        Err(DefineError::VersionTaken { version: 2, .. })
    ));
    assert_eq!(
        w.engine.registry().latest_version(&flow_id("check-in")),
        Some(2)
    );

    assert!(matches!(
        w.offer(&w.tap(choice(&old_question, "Great"))).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(w.texts().last().unwrap(), "Wonderful! Lesson 4 is open.");
    assert_eq!(w.instance(&old).await.flow_version, 1);

    let new = w.start().await;
    assert_eq!(w.instance(&new).await.flow_version, 2);
    assert!(matches!(
        w.offer(&w.tap(choice(&w.last(), "Great"))).await,
        Offer::Consumed { .. }
    ));
    assert_eq!(w.texts().last().unwrap(), "Version 2 says hi");
}

#[tokio::test]
async fn an_invalid_flow_can_never_start() {
    let w = World::new().await;
    let bad = Flow::builder(flow_id("bad"), 1)
        .question("q", "Pick", |q| {
            q.option("A label far too long for Messenger", "end")
        })
        .end("end")
        .build();
    let Err(DefineError::Invalid(errors)) = w.engine.define(bad) else {
        panic!("accepted")
    };
    assert_eq!(errors.len(), 1);
    assert!(matches!(
        w.engine.start(&flow_id("bad"), &w.ann).await,
        Err(ProcessError::UnknownFlow(_))
    ));
    assert_eq!(
        w.engine.registry().limits().max_label_len,
        Some(20),
        "from the transport"
    );
}

#[tokio::test]
async fn delivery_failures_retry_when_they_may_pass_and_fail_the_instance_otherwise() {
    let w = World::new().await;
    w.stub
        .push_failure(DeliveryError::retryable("busy").with_retry_after(Duration::from_secs(5)));
    let id = w.start().await;
    let inst = w.instance(&id).await;
    assert_eq!(inst.status, InstanceStatus::Running);
    assert_eq!(
        inst.due_at,
        Some(w.clock.now().saturating_add(Duration::from_secs(5)))
    );
    assert!(w.stub.sent().is_empty());
    w.clock.advance(Duration::from_secs(5));
    assert_eq!(w.engine.tick(w.clock.now()).await.unwrap().resumed, 1);
    assert_eq!(w.stub.sent().len(), 1);
    assert_eq!(w.instance(&id).await.status, InstanceStatus::Waiting);

    let w = World::new().await;
    w.stub
        .push_failure(DeliveryError::unreachable("blocked the Page"));
    let err = w
        .engine
        .start(&flow_id("check-in"), &w.ann)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessError::Delivery(ref e) if e.kind() == DeliveryErrorKind::Unreachable)
    );
    let inst = w.store.active_for(&w.ann).await.unwrap();
    assert!(inst.is_empty(), "the failed instance is done");

    // A contact without an address on the engine's transports.
    let w = World::new().await;
    let mailer = w
        .directory
        .create(
            NewContact::new()
                .with_name("Mo", "Ray")
                .with_email("m@example.org"),
        )
        .await
        .unwrap()
        .id;
    let started = w.engine.start(&flow_id("check-in"), &mailer).await;
    assert!(
        matches!(&started, Err(ProcessError::Delivery(e)) if e.kind() == DeliveryErrorKind::Unreachable),
        "{started:?}"
    );
    // A contact the template cannot greet: the flow fails, it does not send "Hi ,".
    let nameless = w
        .directory
        .create(NewContact::new().with_address(Address::messenger(PAGE, "x").unwrap()))
        .await
        .unwrap()
        .id;
    assert!(matches!(
        w.engine.start(&flow_id("check-in"), &nameless).await,
        Err(ProcessError::Render(_))
    ));
    assert!(w.stub.sent().is_empty());
    let ghost = ContactId::new("ghost").unwrap();
    assert!(matches!(
        w.engine.start(&flow_id("check-in"), &ghost).await,
        Err(ProcessError::UnknownContact(_))
    ));
}

/// A transport that takes the message and never answers, as a process that dies mid-send.
struct Hanging {
    before_send: bool,
    sent: std::sync::Mutex<Vec<Message>>,
    reached: tokio::sync::Notify,
}

#[async_trait]
impl crate::transport::Transport for Hanging {
    fn channel(&self) -> &Channel {
        &Channel::Messenger
    }
    fn capabilities(&self) -> Capabilities {
        messenger_like()
    }
    async fn send(
        &self,
        _: &Address,
        m: &Message,
        _: &SendContext,
    ) -> Result<crate::Receipt, DeliveryError> {
        if !self.before_send {
            self.sent.lock().unwrap().push(m.clone());
        }
        self.reached.notify_one();
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_crash_between_storing_and_sending_resends_the_question_once_and_either_copy_counts_once()
{
    for before_send in [true, false] {
        let w = World::new().await;
        let hanging = Arc::new(Hanging {
            before_send,
            sent: std::sync::Mutex::new(Vec::new()),
            reached: tokio::sync::Notify::new(),
        });
        // The first process: it dies while sending the first question.
        let crashing = FlowEngine::builder(w.store.clone(), w.directory.clone(), keys())
            .transport(hanging.clone())
            .clock(w.clock.shared())
            .build();
        crashing.define(check_in(1)).unwrap();
        let task = {
            let (engine, ann) = (crashing.clone(), w.ann.clone());
            tokio::spawn(async move { engine.start(&flow_id("check-in"), &ann).await })
        };
        hanging.reached.notified().await;
        task.abort();
        let _ = task.await;
        let stored = w.store.active_for(&w.ann).await.unwrap();
        assert_eq!(stored.len(), 1, "the step is stored before the send");
        let id = stored[0].id.clone();
        assert_eq!(
            (stored[0].step.as_str(), stored[0].status),
            ("ask", InstanceStatus::Running)
        );

        // The restarted process (`w.engine`, same store) finds it once the lease runs out.
        assert_eq!(
            w.engine.tick(w.clock.now()).await.unwrap().resumed,
            0,
            "not before"
        );
        w.clock.advance(Duration::from_secs(121));
        assert_eq!(w.engine.tick(w.clock.now()).await.unwrap().resumed, 1);
        assert_eq!(w.stub.sent().len(), 1, "asked once more");
        assert_eq!(w.engine.tick(w.clock.now()).await.unwrap().resumed, 0);
        let resent = w.last();
        if let Some(first) = hanging.sent.lock().unwrap().first() {
            assert_eq!(first, &resent, "both copies carry the same payloads");
        }
        assert!(matches!(
            w.offer(&w.tap(choice(&resent, "Great"))).await,
            Offer::Consumed { .. }
        ));
        assert_eq!(
            w.offer(&w.tap(choice(&resent, "Great"))).await,
            Offer::Ignored {
                instance: Some(id.clone()),
                reason: IgnoredAnswer::Duplicate
            }
        );
        assert_eq!(w.instance(&id).await.status, InstanceStatus::Finished);
    }
}

#[tokio::test]
async fn a_flow_resumes_from_the_store_after_a_restart() {
    let w = World::new().await;
    let id = w.start().await;
    assert!(matches!(
        w.offer(&w.tap(choice(&w.last(), "Too fast"))).await,
        Offer::Consumed { .. }
    ));
    // A new engine over the same store, flows defined again at startup.
    let restarted = FlowEngine::builder(w.store.clone(), w.directory.clone(), keys())
        .transport(w.stub.clone())
        .clock(w.clock.shared())
        .build();
    assert!(matches!(
        restarted
            .tick(w.clock.now().saturating_add(Duration::from_secs(86_400)))
            .await
            .unwrap()
            .failures[..],
        [(_, ProcessError::UnknownVersion { version: 1, .. })]
    ));
    restarted.define(check_in(1)).unwrap();
    // The instance was put off by `retry_after` (1 minute) when its version was missing.
    w.clock.advance(Duration::from_secs(86_400));
    assert_eq!(restarted.tick(w.clock.now()).await.unwrap().waits, 0);
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(restarted.tick(w.clock.now()).await.unwrap().waits, 1);
    let again = w.last();
    assert_eq!(again.text_body(), "Better today?");
    assert_eq!(
        restarted
            .offer(&w.ann, &w.tap(choice(&again, "Yes")))
            .await
            .unwrap(),
        Offer::Consumed {
            instance: id.clone()
        }
    );
    assert_eq!(w.instance(&id).await.status, InstanceStatus::Finished);
}

/// A store over the memory store that can hold the first `get`s at a barrier (so two answers
/// both read before either writes) and can refuse every update as a conflict.
struct Gated {
    inner: Arc<MemoryProcessStore>,
    barrier: tokio::sync::Barrier,
    /// How many more `get`s wait at the barrier.
    held: std::sync::atomic::AtomicUsize,
    /// Every `update` loses the race.
    contended: std::sync::atomic::AtomicBool,
}

impl Gated {
    fn new(inner: Arc<MemoryProcessStore>, held: usize) -> Arc<Gated> {
        Arc::new(Gated {
            inner,
            barrier: tokio::sync::Barrier::new(held.max(1)),
            held: std::sync::atomic::AtomicUsize::new(held),
            contended: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl ProcessStore for Gated {
    async fn insert(&self, instance: &ProcessInstance) -> Result<(), StoreError> {
        self.inner.insert(instance).await
    }
    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError> {
        let got = self.inner.get(id).await;
        let hold = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if hold {
            self.barrier.wait().await;
        }
        got
    }
    async fn active_for(&self, contact: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        self.inner.active_for(contact).await
    }
    async fn update(&self, instance: &ProcessInstance) -> Result<u64, StoreError> {
        if self.contended.load(Ordering::SeqCst) {
            return Err(StoreError::conflict("another writer"));
        }
        self.inner.update(instance).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError> {
        self.inner.due(now, limit).await
    }
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        self.inner.forget_contact(contact).await
    }
}

impl World {
    /// Another engine over this world's stores and stub (a second host process).
    fn engine_over(&self, store: Arc<dyn ProcessStore>, define: bool) -> FlowEngine {
        let engine = FlowEngine::builder(store, self.directory.clone(), keys())
            .transport(self.stub.clone())
            .clock(self.clock.shared())
            .tick_batch(1)
            .build();
        if define {
            engine.define(check_in(1)).unwrap();
        }
        engine
    }
}

#[tokio::test]
async fn an_answer_to_an_undefined_flow_version_is_ignored_not_an_error() {
    let w = World::new().await;
    let id = w.start().await;
    let question = w.last();
    // A host restarted without defining version 1.
    let restarted = w.engine_over(w.store.clone(), false);
    assert_eq!(
        restarted
            .offer(&w.ann, &w.tap(choice(&question, "Great")))
            .await
            .unwrap(),
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::UnknownFlowVersion
        }
    );
    // Typed, the same label: not an error either; it goes on to the inbox.
    assert_eq!(
        restarted.offer(&w.ann, &w.typed("great")).await.unwrap(),
        Offer::NotConsumed
    );
    assert_eq!(w.instance(&id).await.step, "ask", "nothing moved");
    assert_eq!(w.stub.sent().len(), 1);
    // Once defined, the same button counts.
    restarted.define(check_in(1)).unwrap();
    assert!(matches!(
        restarted
            .offer(&w.ann, &w.tap(choice(&question, "Great")))
            .await
            .unwrap(),
        Offer::Consumed { .. }
    ));
}

#[tokio::test]
async fn an_instance_that_cannot_run_does_not_hold_up_tick() {
    let w = World::new().await;
    // An instance of a flow the next host will not define, due first...
    let other = Flow::builder(flow_id("other"), 1)
        .wait("w", Duration::from_secs(60), "end")
        .end("end")
        .build();
    w.engine.define(other).unwrap();
    let broken = w.engine.start(&flow_id("other"), &w.ann).await.unwrap();
    // ...and a check-in waiting at "pause", due a day later.
    let good = w.start().await;
    w.offer(&w.tap(choice(&w.last(), "Too fast"))).await;
    let restarted = w.engine_over(w.store.clone(), true);
    w.clock.advance(Duration::from_secs(86_400));

    let report = restarted.tick(w.clock.now()).await.unwrap();
    assert!(
        matches!(&report.failures[..], [(id, ProcessError::UnknownVersion { .. })] if *id == broken),
        "{report:?}"
    );
    let report = restarted.tick(w.clock.now()).await.unwrap();
    assert_eq!((report.waits, report.failures.len()), (1, 0), "{report:?}");
    assert_eq!(w.instance(&good).await.step, "again");
    let report = restarted.tick(w.clock.now()).await.unwrap();
    assert!(!report.more && report.failures.is_empty(), "{report:?}");
    assert_eq!(w.instance(&broken).await.status, InstanceStatus::Waiting);

    // A stored step the flow does not have (a corrupt store): failed for good, reported once.
    let mut inst = w.instance(&good).await;
    inst.step = "ghost".into();
    inst.due_at = Some(w.clock.now());
    w.store.update(&inst).await.unwrap();
    let report = restarted.tick(w.clock.now()).await.unwrap();
    assert!(
        matches!(&report.failures[..], [(id, ProcessError::UnknownStep { .. })] if *id == good),
        "{report:?}"
    );
    assert_eq!(w.instance(&good).await.status, InstanceStatus::Failed);
    assert!(
        restarted
            .tick(w.clock.now())
            .await
            .unwrap()
            .failures
            .is_empty()
    );
}

#[tokio::test]
async fn an_answer_that_loses_every_race_is_reported_as_contended_not_duplicate() {
    let w = World::new().await;
    let id = w.start().await;
    let gated = Gated::new(w.store.clone(), 0);
    gated.contended.store(true, Ordering::SeqCst);
    let engine = w.engine_over(gated.clone(), true);
    assert_eq!(
        engine
            .offer(&w.ann, &w.tap(choice(&w.last(), "Great")))
            .await
            .unwrap(),
        Offer::Ignored {
            instance: Some(id.clone()),
            reason: IgnoredAnswer::Contended
        }
    );
    assert_eq!(
        w.instance(&id).await.history[0].choice,
        None,
        "it did not count"
    );
}

/// A transport whose sends take `step` of the (manual) clock each, and which records, at each
/// send, the time and the lease the store holds for the contact's instance.
struct Slow {
    clock: ManualClock,
    store: Arc<MemoryProcessStore>,
    contact: std::sync::OnceLock<ContactId>,
    step: Duration,
    seen: std::sync::Mutex<Vec<(Timestamp, Option<Timestamp>)>>,
}

#[async_trait]
impl crate::transport::Transport for Slow {
    fn channel(&self) -> &Channel {
        &Channel::Messenger
    }
    fn capabilities(&self) -> Capabilities {
        messenger_like()
    }
    async fn send(
        &self,
        _: &Address,
        _: &Message,
        _: &SendContext,
    ) -> Result<crate::Receipt, DeliveryError> {
        self.clock.advance(self.step);
        let contact = self
            .contact
            .get()
            .cloned()
            .unwrap_or_else(|| ContactId::new("x").unwrap());
        let due = self.store.active_for(&contact).await.unwrap()[0].due_at;
        self.seen.lock().unwrap().push((self.clock.now(), due));
        Ok(crate::Receipt::new(
            Channel::Messenger,
            vec![],
            self.clock.now(),
        ))
    }
}

#[tokio::test]
async fn leases_and_timeouts_are_computed_from_the_clock_at_each_step_of_a_slow_drive() {
    let w = World::new().await;
    let slow = Arc::new(Slow {
        clock: w.clock.clone(),
        store: w.store.clone(),
        contact: std::sync::OnceLock::new(),
        step: Duration::from_secs(50),
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let _ = slow.contact.set(w.ann.clone());
    let engine = FlowEngine::builder(w.store.clone(), w.directory.clone(), keys())
        .transport(slow.clone())
        .clock(w.clock.shared())
        .build();
    let flow = Flow::builder(flow_id("welcome"), 1)
        .send("one", "One", "two")
        .send("two", "Two", "three")
        .send("three", "Three", "ask")
        .question("ask", "Ready?", |q| {
            q.option("Yes", "end")
                .timeout(Duration::from_secs(3_600), "end")
        })
        .end("end")
        .build();
    engine.define(flow).unwrap();
    let started = w.clock.now();
    let id = engine.start(&flow_id("welcome"), &w.ann).await.unwrap();
    let seen = slow.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for (i, (at, due)) in seen.iter().enumerate() {
        // Each lease was taken just before its send (50 s ago), so 70 s of it remain.
        assert_eq!(
            *due,
            Some(at.saturating_add(Duration::from_secs(70))),
            "send {i}: the lease is stale"
        );
    }
    let inst = w.instance(&id).await;
    let entered: Vec<_> = inst.history.iter().map(|r| r.at).collect();
    let after = |secs| started.saturating_add(Duration::from_secs(secs));
    assert_eq!(entered, [after(0), after(50), after(100), after(150)]);
    assert_eq!(
        inst.due_at,
        Some(after(200 + 3_600)),
        "the timeout runs from the send"
    );
}

#[tokio::test]
async fn a_send_that_hangs_is_cut_off_inside_the_lease_and_retried() {
    let w = World::new().await;
    let hanging = Arc::new(Hanging {
        before_send: true,
        sent: std::sync::Mutex::new(Vec::new()),
        reached: tokio::sync::Notify::new(),
    });
    let engine = FlowEngine::builder(w.store.clone(), w.directory.clone(), keys())
        .transport(hanging)
        .clock(w.clock.shared())
        .recovery_after(Duration::from_millis(200))
        .retry_after(Duration::from_secs(30))
        .build();
    engine.define(check_in(1)).unwrap();
    let id = tokio::time::timeout(
        Duration::from_secs(5),
        engine.start(&flow_id("check-in"), &w.ann),
    )
    .await
    .expect("the send is cut off")
    .unwrap();
    let inst = w.instance(&id).await;
    assert_eq!(inst.status, InstanceStatus::Running);
    assert_eq!(
        inst.due_at,
        Some(w.clock.now().saturating_add(Duration::from_secs(30))),
        "retried later, like any temporary failure"
    );
}

#[tokio::test]
async fn temporary_failures_retry_up_to_the_attempt_limit_then_fail_the_instance() {
    let w = World::with(|b| b.max_attempts(3).retry_after(Duration::from_secs(10))).await;
    for _ in 0..3 {
        w.stub.push_failure(DeliveryError::retryable("busy"));
    }
    let id = w.start().await;
    assert_eq!(w.instance(&id).await.attempts, 1);
    w.clock.advance(Duration::from_secs(10));
    let report = w.engine.tick(w.clock.now()).await.unwrap();
    assert_eq!((report.resumed, report.failures.len()), (1, 0));
    assert_eq!(
        w.instance(&id).await.attempts,
        2,
        "stored with the instance"
    );
    w.clock.advance(Duration::from_secs(10));
    let report = w.engine.tick(w.clock.now()).await.unwrap();
    assert!(
        matches!(&report.failures[..], [(i, ProcessError::Delivery(e))] if *i == id && e.is_retryable()),
        "{report:?}"
    );
    let inst = w.instance(&id).await;
    assert_eq!((inst.status, inst.attempts), (InstanceStatus::Failed, 3));
    assert!(w.stub.sent().is_empty());

    // A delivered message resets the count.
    let w = World::with(|b| b.max_attempts(2).retry_after(Duration::from_secs(10))).await;
    w.stub.push_failure(DeliveryError::retryable("busy"));
    let id = w.start().await;
    w.clock.advance(Duration::from_secs(10));
    w.engine.tick(w.clock.now()).await.unwrap();
    let inst = w.instance(&id).await;
    assert_eq!((inst.status, inst.attempts), (InstanceStatus::Waiting, 0));
    // Old stored instances without the field read as 0.
    let mut json = serde_json::to_value(&inst).unwrap();
    assert!(json.get("attempts").is_none());
    json.as_object_mut().unwrap().remove("attempts");
    assert_eq!(
        serde_json::from_value::<ProcessInstance>(json)
            .unwrap()
            .attempts,
        0
    );
}
