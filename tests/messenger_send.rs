//! MessengerTransport against the fake Graph API on loopback: rendering, policy, every error
//! class, retries, several Pages, sender actions and the Messenger Profile.

use std::{sync::Arc, time::Duration};

use tidings::{
    activity::LastInbound,
    clock::{Clock, ManualClock, Timestamp},
    contact::Address,
    message::{ChoiceStyle, Message},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, Policy, RetryPolicy,
        SenderAction, StaticPages,
    },
    store::memory::MemoryLastInbound,
    testkit::graph::{FakeGraph, GraphFault},
    transport::{DeliveryErrorKind, Intent, SendContext, Transport},
};

const PAGE: &str = "104812345678901";
const PAGE_B: &str = "204812345678902";
const PSID: &str = "6789012345678901";
const HOUR: Duration = Duration::from_secs(3600);

struct World {
    clock: ManualClock,
    fake: FakeGraph,
    last: Arc<MemoryLastInbound>,
    messenger: MessengerTransport,
}

impl World {
    fn to(&self) -> Address {
        Address::messenger(PAGE, PSID).unwrap()
    }

    /// The person wrote `ago` before now: both the crate and the fake know it.
    async fn user_wrote(&self, ago: Duration) {
        let at = self.clock.now().saturating_sub(ago);
        self.last.record(&self.to(), at).await.unwrap();
        self.fake.user_wrote(PAGE, PSID, at);
    }
}

async fn world_with(
    configure: impl FnOnce(
        tidings::messenger::MessengerTransportBuilder,
    ) -> tidings::messenger::MessengerTransportBuilder,
) -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let fake = FakeGraph::builder()
        .page(PAGE, "token-a")
        .page(PAGE_B, "token-b")
        .app_secret(AppSecret::new("app-secret"))
        .clock(clock.shared())
        .start()
        .await
        .unwrap();
    let pages = StaticPages::new([
        PageConfig::new(PAGE, PageAccessToken::new("token-a")),
        PageConfig::new(PAGE_B, PageAccessToken::new("token-b")),
    ]);
    let last = Arc::new(MemoryLastInbound::new());
    let builder = MessengerTransport::builder(Arc::new(pages), last.clone())
        .base_url(fake.base_url())
        .app_secret(AppSecret::new("app-secret"))
        .clock(clock.shared())
        .retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_delays(Duration::from_millis(1), Duration::from_millis(5))
                .with_rate_limit_pause(Duration::from_millis(20)),
        );
    let messenger = configure(builder).build().unwrap();
    World {
        clock,
        fake,
        last,
        messenger,
    }
}

async fn world() -> World {
    world_with(|b| b).await
}

fn text(s: &str) -> Message {
    Message::text(s).unwrap()
}

#[tokio::test]
async fn a_reply_inside_the_window_goes_as_response_with_appsecret_proof() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    let receipt = w
        .messenger
        .send(&w.to(), &text("Hello Ann"), &SendContext::reply())
        .await
        .unwrap();
    assert_eq!(receipt.message_ids, ["m_1"]);
    let sent = w.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].page_id, PAGE);
    assert_eq!(sent[0].recipient, PSID);
    assert_eq!(sent[0].messaging_type.as_deref(), Some("RESPONSE"));
    assert_eq!(sent[0].tag, None);
    assert_eq!(sent[0].text(), Some("Hello Ann"));
}

#[tokio::test]
async fn a_wrong_app_secret_is_unauthorized() {
    let w = world_with(|b| b.app_secret(AppSecret::new("not-the-secret"))).await;
    w.user_wrote(HOUR).await;
    let e = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized, "{e}");
    assert_eq!(w.fake.request_count(), 1, "not retried");
}

#[tokio::test]
async fn long_text_with_choices_goes_in_order_with_the_buttons_last() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    let long = (0..700)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = Message::builder(long.clone())
        .choice("Yes", "Y")
        .choice("No", "N")
        .build()
        .unwrap();
    let receipt = w
        .messenger
        .send(&w.to(), &message, &SendContext::reply())
        .await
        .unwrap();
    let sent = w.fake.sent();
    assert!(sent.len() >= 2);
    assert_eq!(receipt.message_ids.len(), sent.len());
    let last = &sent[sent.len() - 1].body["message"];
    assert_eq!(last["attachment"]["payload"]["template_type"], "button");
    assert_eq!(
        last["attachment"]["payload"]["buttons"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let parts: Vec<String> = sent
        .iter()
        .map(|s| {
            s.text()
                .or_else(|| s.body["message"]["attachment"]["payload"]["text"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        parts.join(" "),
        long,
        "split on spaces, in order, nothing lost"
    );

    let quick = Message::builder("Pick a course")
        .choice("Rust", "R")
        .style(ChoiceStyle::QuickReplies)
        .build()
        .unwrap();
    w.messenger
        .send(&w.to(), &quick, &SendContext::reply())
        .await
        .unwrap();
    let sent = w.fake.sent();
    let body = &sent.last().unwrap().body;
    assert_eq!(body["message"]["quick_replies"][0]["payload"], "R");
}

#[tokio::test]
async fn messages_that_cannot_render_are_refused_without_a_request() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    let long_label = Message::builder("q")
        .choice("a label of 21 chars!!", "P")
        .build()
        .unwrap();
    let e = w
        .messenger
        .send(&w.to(), &long_label, &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
    let four_buttons = (0..4)
        .fold(Message::builder("q").style(ChoiceStyle::Buttons), |b, i| {
            b.choice(format!("c{i}"), format!("p{i}"))
        })
        .build()
        .unwrap();
    let e = w
        .messenger
        .send(&w.to(), &four_buttons, &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
    assert!(e.to_string().contains("at most 3"), "{e}");
    let email = Address::email("ann@example.org").unwrap();
    let e = w
        .messenger
        .send(&email, &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
    assert_eq!(w.fake.request_count(), 0);
}

#[tokio::test]
async fn outside_the_window_only_fitting_tags_are_sent() {
    let w = world_with(|b| b.policy(Policy::new().with_human_agent(true))).await;
    w.user_wrote(30 * HOUR).await;

    let e = w
        .messenger
        .send(
            &w.to(),
            &text("Flash sale!"),
            &SendContext::new(Intent::Promotional),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::WindowClosed);
    let e = w
        .messenger
        .send(&w.to(), &text("auto"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::WindowClosed);
    assert_eq!(w.fake.request_count(), 0, "refused before any HTTP call");

    w.messenger
        .send(
            &w.to(),
            &text("Your password changed"),
            &SendContext::new(Intent::AccountUpdate),
        )
        .await
        .unwrap();
    w.messenger
        .send(
            &w.to(),
            &text("Sorry for the wait"),
            &SendContext::agent_reply(),
        )
        .await
        .unwrap();
    let sent = w.fake.sent();
    assert_eq!(
        (sent[0].messaging_type.as_deref(), sent[0].tag.as_deref()),
        (Some("MESSAGE_TAG"), Some("ACCOUNT_UPDATE"))
    );
    assert_eq!(sent[1].tag.as_deref(), Some("HUMAN_AGENT"));

    w.clock.advance(7 * 24 * HOUR);
    let e = w
        .messenger
        .send(&w.to(), &text("Still there?"), &SendContext::agent_reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::WindowClosed);
}

#[tokio::test]
async fn graphs_own_window_refusal_is_classified_as_window_closed() {
    let w = world().await;
    // The crate believes the window is open, Graph does not (it never heard from the person).
    w.last.record(&w.to(), w.clock.now()).await.unwrap();
    let e = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::WindowClosed, "{e}");
    assert!(e.to_string().contains("2018278"), "{e}");
    assert_eq!(w.fake.request_count(), 1, "a closed window is not retried");
}

#[tokio::test]
async fn retryable_failures_are_retried_then_succeed() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    w.fake.fail_next(2, GraphFault::temporary());
    let receipt = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap();
    assert_eq!(receipt.message_ids.len(), 1);
    assert_eq!(w.fake.request_count(), 3);

    w.fake.fail_next(1, GraphFault::server_error());
    w.messenger
        .send(&w.to(), &text("again"), &SendContext::reply())
        .await
        .unwrap();
    assert_eq!(w.fake.request_count(), 5);
}

#[tokio::test]
async fn an_exhausted_retry_budget_reports_a_retryable_error() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    w.fake.fail_next(10, GraphFault::temporary());
    let e = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(w.fake.request_count(), 3, "one attempt and two retries");
    assert!(w.fake.sent().is_empty());
}

#[tokio::test]
async fn permanent_failures_are_not_retried() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    w.fake.fail_next(1, GraphFault::unavailable_user());
    let e = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unreachable);
    assert_eq!(w.fake.request_count(), 1);

    w.fake.fail_next(1, GraphFault::expired_token());
    let e = w
        .messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized);
    assert_eq!(w.fake.request_count(), 2);
    let source = std::error::Error::source(&e)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        source.contains("190"),
        "the Graph error is the source: {source}"
    );
}

#[tokio::test]
async fn rate_limits_pause_the_page_and_are_retried() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    w.fake.fail_next(1, GraphFault::rate_limited());
    let started = tokio::time::Instant::now();
    w.messenger
        .send(&w.to(), &text("hi"), &SendContext::reply())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "waited for the rate-limit pause"
    );
    assert_eq!(w.fake.request_count(), 2);
}

#[tokio::test]
async fn each_page_sends_with_its_own_token_and_unknown_pages_are_refused() {
    let w = world().await;
    let to_b = Address::messenger(PAGE_B, PSID).unwrap();
    w.last.record(&to_b, w.clock.now()).await.unwrap();
    w.fake.user_wrote(PAGE_B, PSID, w.clock.now());
    w.messenger
        .send(&to_b, &text("from B"), &SendContext::reply())
        .await
        .unwrap();
    assert_eq!(
        w.fake.sent()[0].page_id,
        PAGE_B,
        "token-b was accepted for Page B only"
    );

    let stranger = Address::messenger("999", PSID).unwrap();
    let e = w
        .messenger
        .send(&stranger, &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized);
    assert_eq!(w.fake.request_count(), 1);
}

#[tokio::test]
async fn a_token_that_graph_refuses_is_unauthorized() {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let fake = FakeGraph::builder()
        .page(PAGE, "token-a")
        .clock(clock.shared())
        .start()
        .await
        .unwrap();
    let pages = StaticPages::new([PageConfig::new(PAGE, PageAccessToken::new("stale-token"))]);
    let last = Arc::new(MemoryLastInbound::new());
    let to = Address::messenger(PAGE, PSID).unwrap();
    last.record(&to, clock.now()).await.unwrap();
    fake.user_wrote(PAGE, PSID, clock.now());
    let messenger = MessengerTransport::builder(Arc::new(pages), last)
        .base_url(fake.base_url())
        .clock(clock.shared())
        .build()
        .unwrap();
    let e = messenger
        .send(&to, &text("hi"), &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized);
    assert!(
        !format!("{e:?} {e}").contains("stale-token"),
        "the token never shows in errors"
    );
}

#[tokio::test]
async fn sender_actions_and_profile_settings_reach_graph() {
    let w = world().await;
    w.user_wrote(HOUR).await;
    w.messenger
        .sender_action(&w.to(), SenderAction::TypingOn)
        .await
        .unwrap();
    assert_eq!(w.fake.sent()[0].sender_action(), Some("typing_on"));

    w.messenger
        .set_get_started(PAGE, "GET_STARTED")
        .await
        .unwrap();
    w.messenger
        .set_greeting(PAGE, "Hi {{user_first_name}}, welcome to the school!")
        .await
        .unwrap();
    let profile = w.fake.profile(PAGE);
    assert_eq!(profile["get_started"]["payload"], "GET_STARTED");
    assert_eq!(profile["greeting"][0]["locale"], "default");

    let e = w
        .messenger
        .set_greeting(PAGE, &"x".repeat(161))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
}

#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let w = world().await;
    let shown = format!("{:?}", w.messenger);
    assert!(
        !shown.contains("app-secret") && !shown.contains("token-a"),
        "{shown}"
    );
}
