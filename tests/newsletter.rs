//! Campaigns end to end over loopback: the memory segment store, the Messenger transport
//! against the fake Graph API, a stub e-mail transport, the memory outbox.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;
use tidings::{
    activity::LastInbound,
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    keys::SigningKey,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, RetryPolicy, StaticPages,
    },
    newsletter::{
        Campaign, CampaignId, CampaignRunner, CampaignRunnerBuilder, Outbox, Outcome,
        OutcomeRecord, RunControl, RunState, SkipReason, campaign::OPT_OUT_TAG, login::LoginLinks,
    },
    secrecy::SecretSlice,
    segment::Segment,
    store::memory::{MemoryDirectory, MemoryLastInbound, MemoryOutbox},
    template::CampaignVars,
    testkit::graph::{FakeGraph, GraphFault},
    token::Tokens,
    transport::{DeliveryErrorKind, Intent, SharedTransport, TransportSet, stub::StubTransport},
};
use url::Url;

const PAGE: &str = "104812345678901";
const HOUR: Duration = Duration::from_secs(3600);

/// What kind of recipient contact `i` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Messenger, wrote 2 hours ago (some also have e-mail).
    Active,
    /// Messenger, wrote 3 days ago, and e-mail.
    ClosedWithEmail,
    /// Messenger, wrote 3 days ago, no e-mail.
    ClosedOnly,
    /// No address at all.
    Nowhere,
    /// E-mail only.
    EmailOnly,
    /// E-mail only, opted out.
    OptedOut,
    /// Messenger, active, but no `plan` field: the template needs it.
    MissingPlan,
}

fn kind(i: usize) -> Kind {
    match i % 20 {
        0..=7 => Kind::Active,
        8 | 9 => Kind::ClosedWithEmail,
        10 => Kind::ClosedOnly,
        11 | 12 => Kind::Nowhere,
        13..=16 => Kind::EmailOnly,
        17 => Kind::OptedOut,
        18 => Kind::MissingPlan,
        _ => Kind::Active,
    }
}

fn psid(i: usize) -> String {
    format!("{}", 7_000_000_000_000_000u64 + i as u64)
}

fn contact_id(i: usize) -> ContactId {
    ContactId::new(format!("u{i:06}")).unwrap()
}

struct World {
    clock: ManualClock,
    fake: FakeGraph,
    directory: Arc<MemoryDirectory>,
    outbox: Arc<MemoryOutbox>,
    email: Arc<StubTransport>,
    transports: TransportSet,
}

async fn world(recipients: usize) -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let fake = FakeGraph::builder()
        .page(PAGE, "token-a")
        .app_secret(AppSecret::new("app-secret"))
        .clock(clock.shared())
        .start()
        .await
        .unwrap();
    let last = Arc::new(MemoryLastInbound::new());
    let messenger = MessengerTransport::builder(
        Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("token-a"),
        )])),
        last.clone(),
    )
    .base_url(fake.base_url())
    .app_secret(AppSecret::new("app-secret"))
    .clock(clock.shared())
    .rate_limit(None)
    .retry(
        RetryPolicy::default()
            .with_max_retries(1)
            .with_delays(Duration::from_millis(1), Duration::from_millis(2))
            .with_rate_limit_pause(Duration::from_millis(30)),
    )
    .build()
    .unwrap();
    let email = Arc::new(StubTransport::new(Channel::Email));
    let mut transports = TransportSet::new();
    transports.insert(Arc::new(messenger) as SharedTransport);
    transports.insert(email.clone() as SharedTransport);

    let directory = Arc::new(MemoryDirectory::new());
    for i in 0..recipients {
        let mut c = Contact::new(contact_id(i));
        if i % 3 != 0 {
            c.first_name = Some(format!("Name{i}"));
        }
        let k = kind(i);
        if k != Kind::MissingPlan {
            c.fields.insert(
                "plan".into(),
                json!(if i % 2 == 0 { "pro" } else { "free" }),
            );
        }
        let messenger_address = Address::messenger(PAGE, psid(i)).unwrap();
        let wrote = |ago: Duration| {
            let at = clock.now().saturating_sub(ago);
            fake.user_wrote(PAGE, &psid(i), at);
            let last = last.clone();
            let address = messenger_address.clone();
            async move { last.record(&address, at).await.unwrap() }
        };
        match k {
            Kind::Active | Kind::MissingPlan => {
                c.addresses.push(messenger_address.clone());
                wrote(2 * HOUR).await;
                if i % 4 == 0 {
                    c.addresses
                        .push(Address::email(format!("u{i}@example.org")).unwrap());
                }
            }
            Kind::ClosedWithEmail | Kind::ClosedOnly => {
                c.addresses.push(messenger_address.clone());
                wrote(72 * HOUR).await;
                if k == Kind::ClosedWithEmail {
                    c.addresses
                        .push(Address::email(format!("u{i}@example.org")).unwrap());
                }
            }
            Kind::Nowhere => {}
            Kind::EmailOnly | Kind::OptedOut => {
                c.addresses
                    .push(Address::email(format!("u{i}@example.org")).unwrap());
                if k == Kind::OptedOut {
                    c.tags.insert(OPT_OUT_TAG.into());
                }
            }
        }
        directory.insert(c).unwrap();
    }
    World {
        clock,
        fake,
        directory,
        outbox: Arc::new(MemoryOutbox::new()),
        email,
        transports,
    }
}

impl World {
    fn runner(&self) -> CampaignRunner {
        self.runner_builder().build()
    }

    fn runner_builder(&self) -> CampaignRunnerBuilder {
        CampaignRunner::builder(self.directory.clone(), self.outbox.clone())
            .transports(self.transports.clone())
            .clock(self.clock.shared())
            .concurrency(16)
            .page_size(250)
            .retries(3, Duration::from_millis(1))
    }

    async fn outcomes(&self, campaign: &CampaignId) -> Vec<OutcomeRecord> {
        let mut all = Vec::new();
        loop {
            let page = self
                .outbox
                .list(
                    campaign,
                    all.last().map(|r: &OutcomeRecord| &r.contact),
                    1000,
                )
                .await
                .unwrap();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    /// Messages each contact received, over both transports.
    fn received(&self) -> HashMap<String, usize> {
        let mut by_psid: HashMap<String, usize> = HashMap::new();
        for sent in self.fake.sent() {
            *by_psid.entry(sent.recipient).or_default() += 1;
        }
        for sent in self.email.sent() {
            *by_psid.entry(sent.to.id().to_owned()).or_default() += 1;
        }
        by_psid
    }
}

fn newsletter(id: &str) -> Campaign {
    Campaign::builder(
        CampaignId::new(id).unwrap(),
        Segment::everyone(),
        "Hi {{ first_name | default('friend') }}! Your {{ fields.plan }} plan now has lesson {{ campaign.lesson }}.",
    )
    .vars(CampaignVars::from_json(json!({"lesson": 4})).unwrap())
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_recipients_each_get_exactly_one_outcome() {
    const N: usize = 10_000;
    let w = world(N).await;
    // Transient errors every 97th request and a burst of rate-limit errors.
    w.fake.fail_every(97, GraphFault::temporary());
    w.fake.fail_next(3, GraphFault::rate_limited());
    let campaign = newsletter("spring-10k");
    let control = RunControl::new();
    let progress = control.progress();
    let report = w.runner().run(&campaign, &control).await.unwrap();

    let outcomes = w.outcomes(campaign.id()).await;
    assert_eq!(outcomes.len(), N, "one outcome per recipient");
    let received = w.received();
    for record in &outcomes {
        let i: usize = record.contact.as_str()[1..].parse().unwrap();
        let key_psid = psid(i);
        let key_email = format!("u{i}@example.org");
        let got = received.get(&key_psid).copied().unwrap_or(0)
            + received.get(&key_email).copied().unwrap_or(0);
        let expected = match kind(i) {
            Kind::Active => Outcome::Sent {
                channel: Channel::Messenger,
                message_ids: vec![],
            },
            Kind::ClosedWithEmail | Kind::EmailOnly => Outcome::Sent {
                channel: Channel::Email,
                message_ids: vec![],
            },
            Kind::ClosedOnly => Outcome::Skipped {
                reason: SkipReason::WindowClosed,
            },
            Kind::Nowhere => Outcome::Skipped {
                reason: SkipReason::NoAddress,
            },
            Kind::OptedOut => Outcome::Skipped {
                reason: SkipReason::OptedOut,
            },
            Kind::MissingPlan => Outcome::Failed {
                kind: None,
                reason: String::new(),
            },
        };
        match (&record.outcome, &expected) {
            (
                Outcome::Sent {
                    channel,
                    message_ids,
                },
                Outcome::Sent { channel: want, .. },
            ) => {
                assert_eq!(channel, want, "{i}");
                assert_eq!(message_ids.len(), 1, "{i}");
                assert_eq!(got, 1, "contact {i} received {got} messages");
            }
            (Outcome::Failed { kind, reason }, Outcome::Failed { .. }) => {
                assert_eq!(*kind, None, "{i}");
                assert!(reason.contains("no value"), "{i}: {reason}");
                assert_eq!(got, 0, "{i}");
            }
            (actual, expected) => {
                assert_eq!(actual, expected, "contact {i}");
                assert_eq!(got, 0, "{i}");
            }
        }
    }
    // Nobody got anything twice, and nothing went to anyone without an outcome.
    assert!(received.values().all(|&n| n == 1));

    let kinds = (0..N).map(kind).collect::<Vec<_>>();
    let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count() as u64;
    let t = &report.this_run;
    assert_eq!(t.recipients(), N as u64);
    assert_eq!(report.total, report.this_run);
    assert_eq!(t.sent_by_channel[&Channel::Messenger], count(Kind::Active));
    assert_eq!(
        t.sent_by_channel[&Channel::Email],
        count(Kind::ClosedWithEmail) + count(Kind::EmailOnly)
    );
    assert_eq!(
        t.skipped[&SkipReason::WindowClosed],
        count(Kind::ClosedOnly)
    );
    assert_eq!(t.skipped[&SkipReason::NoAddress], count(Kind::Nowhere));
    assert_eq!(t.skipped[&SkipReason::OptedOut], count(Kind::OptedOut));
    assert_eq!(t.failed, count(Kind::MissingPlan));
    assert_eq!(t.uncertain, 0);
    // Reports serialize for an admin API.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["this_run"]["skipped"]["window_closed"],
        json!(count(Kind::ClosedOnly))
    );
    assert_eq!(
        json["this_run"]["sent_by_channel"]["email"],
        json!(t.sent_by_channel[&Channel::Email])
    );
    let p = progress.borrow().clone();
    assert!(
        p.finished && p.total == Some(N as u64) && p.done == N as u64,
        "{p:?}"
    );
    assert_eq!(p.sent + p.skipped + p.failed, N as u64);

    // Running it again sends nothing.
    let before = w.fake.sent().len() + w.email.sent().len();
    let again = w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    assert_eq!(again.this_run.recipients(), 0);
    assert_eq!(again.total, report.total);
    assert_eq!(w.fake.sent().len() + w.email.sent().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_knows_its_total_from_the_start_and_says_finished_at_the_end() {
    const N: usize = 600;
    let w = world(N).await;
    let campaign = newsletter("with-a-bar");
    let control = RunControl::new();
    let mut progress = control.progress();
    // What a progress bar sees while the run goes on.
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            let finished = p.finished;
            seen.push(p);
            if finished {
                break;
            }
        }
        seen
    });
    w.runner().run(&campaign, &control).await.unwrap();
    let seen = watcher.await.unwrap();
    assert!(
        seen.iter()
            .any(|p| !p.finished && p.done < N as u64 && p.total == Some(N as u64)),
        "a total before the end: {:?}",
        seen.first()
    );
    let last = seen.last().unwrap();
    assert!(last.finished && last.total == Some(N as u64), "{last:?}");
    assert_eq!(last.state, RunState::Finished, "{last:?}");
    assert_eq!(control.state(), RunState::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_campaign_then_a_resume_sends_nobody_twice() {
    const N: usize = 1_000;
    let w = world(N).await;
    w.fake.set_latency(Duration::from_millis(2));
    let campaign = newsletter("crash");
    let control = RunControl::new();
    let mut progress = control.progress();
    let runner = w.runner();
    let run = tokio::spawn({
        let campaign = campaign.clone();
        let control = control.clone();
        async move { runner.run(&campaign, &control).await }
    });
    while progress.borrow_and_update().done < 300 {
        progress.changed().await.unwrap();
    }
    // The process dies: the run is dropped wherever it is, sends in flight included.
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let after_crash = w.outcomes(campaign.id()).await;
    let pending = after_crash
        .iter()
        .filter(|r| r.outcome.is_pending())
        .count();
    assert!(
        after_crash.len() >= 300 && after_crash.len() < N,
        "{}",
        after_crash.len()
    );

    let report = w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    let outcomes = w.outcomes(campaign.id()).await;
    assert_eq!(
        outcomes.len(),
        N,
        "every recipient has an outcome after the resume"
    );
    assert_eq!(report.total.recipients(), N as u64);
    assert_eq!(report.total.uncertain, pending as u64);
    assert_eq!(
        report.this_run.recipients() + after_crash.len() as u64,
        N as u64,
        "the resume handled exactly those without an outcome"
    );
    let received = w.received();
    assert!(
        received.values().all(|&n| n == 1),
        "nobody received the newsletter twice"
    );
    for record in outcomes {
        let i: usize = record.contact.as_str()[1..].parse().unwrap();
        let got = received.get(&psid(i)).copied().unwrap_or(0)
            + received
                .get(&format!("u{i}@example.org"))
                .copied()
                .unwrap_or(0);
        match record.outcome {
            Outcome::Sent { .. } => assert_eq!(got, 1, "{i}"),
            // Interrupted between send and record: maybe sent once, never twice.
            Outcome::Pending => assert!(got <= 1, "{i}"),
            _ => assert_eq!(got, 0, "{i}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel() {
    const N: usize = 400;
    let w = world(N).await;
    w.fake.set_latency(Duration::from_millis(1));
    let campaign = newsletter("controlled");
    let control = RunControl::new();
    let mut progress = control.progress();
    let runner = w.runner_builder().concurrency(4).page_size(50).build();
    let run = tokio::spawn({
        let campaign = campaign.clone();
        let control = control.clone();
        async move { runner.run(&campaign, &control).await }
    });
    while progress.borrow_and_update().done < 64 {
        progress.changed().await.unwrap();
    }
    control.pause();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let paused_at = w.outbox_len(campaign.id()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        w.outbox_len(campaign.id()).await,
        paused_at,
        "nothing moves while paused"
    );
    assert_eq!(progress.borrow().state, RunState::Paused);
    control.resume();
    while progress.borrow_and_update().done < 192 {
        progress.changed().await.unwrap();
    }
    control.cancel();
    control.resume(); // a cancelled run stays cancelled
    let report = run.await.unwrap().unwrap();
    assert!(report.cancelled);
    let recorded = w.outcomes(campaign.id()).await;
    assert!(recorded.len() < N, "{}", recorded.len());
    assert!(
        recorded.iter().all(|r| !r.outcome.is_pending()),
        "a cancel lets sends in flight finish and record"
    );
    assert_eq!(report.this_run.recipients(), recorded.len() as u64);

    let rest = w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    assert!(!rest.cancelled);
    assert_eq!(rest.total.recipients(), N as u64);
    assert_eq!(rest.this_run.recipients(), (N - recorded.len()) as u64);
    assert!(w.received().values().all(|&n| n == 1));
}

impl World {
    async fn outbox_len(&self, campaign: &CampaignId) -> usize {
        self.outcomes(campaign).await.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_pause_the_campaign_and_persistent_failures_are_recorded() {
    let w = world(40).await;
    // More rate-limit errors than the transport retries: the campaign pauses and retries.
    w.fake.fail_next(6, GraphFault::rate_limited());
    let campaign = Campaign::builder(
        CampaignId::new("rl").unwrap(),
        Segment::has_address(Channel::Messenger),
        "News",
    )
    .channels([Channel::Messenger])
    .build()
    .unwrap();
    let started = tokio::time::Instant::now();
    let report = w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "the campaign waited for the rate-limit pause"
    );
    let messenger_kinds = (0..40)
        .filter(|&i| {
            matches!(
                kind(i),
                Kind::Active | Kind::MissingPlan | Kind::ClosedOnly | Kind::ClosedWithEmail
            )
        })
        .count() as u64;
    assert_eq!(report.this_run.recipients(), messenger_kinds);
    assert_eq!(report.this_run.failed, 0);

    // A transport failing for good: the recipients are recorded as failed, with the kind.
    let w = world(20).await;
    w.fake.fail_every(1, GraphFault::server_error());
    let report = w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    let outcomes = w.outcomes(campaign.id()).await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(report.this_run.failed as usize, failed.len());
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .all(|k| *k == Some(DeliveryErrorKind::Retryable))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_links_reach_the_recipient_and_verify() {
    let w = world(20).await;
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![3u8; 32])).unwrap())
        .with_clock(w.clock.shared());
    let links = LoginLinks::new(tokens, Url::parse("https://school.example/login").unwrap())
        .unwrap()
        .clock(w.clock.shared());
    let campaign = Campaign::builder(
        CampaignId::new("with-login").unwrap(),
        Segment::active_within(Channel::Messenger, 24).unwrap(),
        "Lesson 4: https://school.example/lessons/4 (also on https://youtube.com/x)",
    )
    .channels([Channel::Messenger])
    .login_links(links.clone())
    .build()
    .unwrap();
    // The directory has no activity record: the activity segment is refused, nothing is sent.
    assert!(matches!(
        w.runner().run(&campaign, &RunControl::new()).await,
        Err(tidings::newsletter::CampaignError::Store(
            tidings::StoreError::Invalid { .. }
        ))
    ));
    assert!(w.fake.sent().is_empty());

    let campaign = Campaign::builder(
        CampaignId::new("with-login-2").unwrap(),
        Segment::has_address(Channel::Messenger),
        "Lesson 4: https://school.example/lessons/4 (also on https://youtube.com/x)",
    )
    .channels([Channel::Messenger])
    .link("https://school.example/lessons/4/quiz", Some("Quiz"))
    .login_links(links.clone())
    .build()
    .unwrap();
    w.runner().run(&campaign, &RunControl::new()).await.unwrap();
    let sent = w.fake.sent();
    assert!(!sent.is_empty());
    for request in sent {
        let text = request
            .text()
            .map(str::to_owned)
            .or_else(|| {
                request.body["message"]["attachment"]["payload"]["text"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap();
        assert!(text.contains("(also on https://youtube.com/x)"), "{text}");
        let link = text.split_whitespace().nth(2).unwrap();
        let link = Url::parse(link).unwrap();
        let login = links.verify_query(link.query().unwrap()).await.unwrap();
        let i: usize = login.contact.as_str()[1..].parse().unwrap();
        assert_eq!(
            request.recipient,
            psid(i),
            "each link logs in its own recipient"
        );
        assert_eq!(login.target.as_str(), "https://school.example/lessons/4");
        assert_eq!(login.campaign.as_str(), "with-login-2");
        let button = request.body["message"]["attachment"]["payload"]["buttons"][0]["url"]
            .as_str()
            .unwrap();
        let button = Url::parse(button).unwrap();
        let quiz = links.verify_query(button.query().unwrap()).await.unwrap();
        assert_eq!(
            quiz.target.as_str(),
            "https://school.example/lessons/4/quiz"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_use_the_tag_for_their_purpose_and_record_once() {
    let w = world(20).await;
    let runner = w.runner();
    let receipt = Campaign::notification(
        CampaignId::new("payment-77").unwrap(),
        "Payment received, {{ first_name | default('there') }}. Thank you!",
    )
    .purpose(Intent::PostPurchase)
    .build()
    .unwrap();
    // Contact 8: Messenger window closed, e-mail too. The purchase tag lets Messenger send.
    let closed = w.directory_contact(8).await;
    let record = runner.send_one(&receipt, &closed).await.unwrap();
    assert!(
        matches!(&record.outcome, Outcome::Sent { channel, .. } if *channel == Channel::Messenger)
    );
    let sent = w.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].tag.as_deref(), Some("POST_PURCHASE_UPDATE"));
    // Asked again (a retried webhook from the payment provider): nothing is sent.
    let again = runner.send_one(&receipt, &closed).await.unwrap();
    assert_eq!(again, record);
    assert_eq!(w.fake.sent().len(), 1);

    // A plain update may not go outside the window: it falls to e-mail.
    let update = Campaign::notification(
        CampaignId::new("lesson-open-5").unwrap(),
        "Lesson 5 is open",
    )
    .build()
    .unwrap();
    let record = runner.send_one(&update, &closed).await.unwrap();
    assert!(matches!(&record.outcome, Outcome::Sent { channel, .. } if *channel == Channel::Email));
    let mail = w.email.sent();
    assert_eq!(mail.len(), 1);
    assert_eq!(
        mail[0].ctx.idempotency_key.as_deref(),
        Some("lesson-open-5:u000008"),
        "transports that deduplicate get one key per campaign and contact"
    );
    // Opt-out tags do not stop account notifications.
    let opted_out = w.directory_contact(17).await;
    let record = runner.send_one(&update, &opted_out).await.unwrap();
    assert!(matches!(record.outcome, Outcome::Sent { .. }));
}

impl World {
    async fn directory_contact(&self, i: usize) -> Contact {
        use tidings::identity::Directory;
        self.directory.get(&contact_id(i)).await.unwrap().unwrap()
    }
}

/// Sends the first `ok` messages, then never answers (the process dies mid-send).
struct HangsAfter {
    channel: Channel,
    ok: usize,
    sent: std::sync::Mutex<Vec<Address>>,
}

#[async_trait::async_trait]
impl tidings::transport::Transport for HangsAfter {
    fn channel(&self) -> &Channel {
        &self.channel
    }
    fn capabilities(&self) -> tidings::transport::Capabilities {
        tidings::transport::Capabilities::text_only()
    }
    async fn send(
        &self,
        to: &Address,
        _message: &tidings::message::Message,
        _ctx: &tidings::transport::SendContext,
    ) -> Result<tidings::message::Receipt, tidings::transport::DeliveryError> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(to.clone());
            sent.len()
        };
        if n > self.ok {
            std::future::pending::<()>().await;
        }
        Ok(tidings::message::Receipt::new(
            self.channel.clone(),
            vec![format!("e{n}")],
            Timestamp::from_secs(1),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_cut_off_mid_flight_are_reported_uncertain_and_never_resent() {
    const N: usize = 200;
    let directory = Arc::new(MemoryDirectory::new());
    for i in 0..N {
        let mut c = Contact::new(contact_id(i));
        c.addresses
            .push(Address::email(format!("u{i}@example.org")).unwrap());
        directory.insert(c).unwrap();
    }
    let outbox = Arc::new(MemoryOutbox::new());
    let hanging = Arc::new(HangsAfter {
        channel: Channel::Email,
        ok: 50,
        sent: Default::default(),
    });
    let mut transports = TransportSet::new();
    transports.insert(hanging.clone() as SharedTransport);
    let campaign = Campaign::builder(
        CampaignId::new("cut").unwrap(),
        Segment::everyone(),
        "Hello",
    )
    .channels([Channel::Email])
    .build()
    .unwrap();
    let runner = CampaignRunner::builder(directory.clone(), outbox.clone())
        .transports(transports)
        .concurrency(8)
        .build();
    let run = tokio::spawn({
        let campaign = campaign.clone();
        async move { runner.run(&campaign, &RunControl::new()).await }
    });
    // 50 sends complete, then 8 hang in flight.
    while hanging.sent.lock().unwrap().len() < 58 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.abort();
    let _ = run.await;
    let cut_off: Vec<Address> = hanging.sent.lock().unwrap()[50..].to_vec();
    assert_eq!(cut_off.len(), 8);

    let email = Arc::new(StubTransport::new(Channel::Email));
    let mut transports = TransportSet::new();
    transports.insert(email.clone() as SharedTransport);
    let report = CampaignRunner::builder(directory, outbox)
        .transports(transports)
        .build()
        .run(&campaign, &RunControl::new())
        .await
        .unwrap();
    assert_eq!(report.total.uncertain, 8, "the cut-off sends are reported");
    assert_eq!(report.total.sent, (N - 8) as u64);
    assert_eq!(report.this_run.sent, (N - 58) as u64);
    let resent: Vec<Address> = email.sent().into_iter().map(|s| s.to).collect();
    assert!(
        cut_off.iter().all(|a| !resent.contains(a)),
        "a recipient whose send may have gone out is never sent to again"
    );
    // The report names them, in id order.
    let mut named: Vec<ContactId> = cut_off
        .iter()
        .map(|a| {
            let i: usize = a
                .id()
                .trim_start_matches('u')
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            contact_id(i)
        })
        .collect();
    named.sort();
    assert_eq!(report.uncertain, named);
}

/// Logs the claims an outbox receives.
struct ClaimLog {
    inner: MemoryOutbox,
    claimed: std::sync::Mutex<Vec<ContactId>>,
}

#[async_trait::async_trait]
impl Outbox for ClaimLog {
    async fn record(
        &self,
        record: &OutcomeRecord,
    ) -> Result<tidings::newsletter::Recorded, tidings::StoreError> {
        if record.outcome.is_pending() {
            self.claimed.lock().unwrap().push(record.contact.clone());
        }
        self.inner.record(record).await
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), tidings::StoreError> {
        self.inner.finish(record).await
    }
    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, tidings::StoreError> {
        self.inner.get(campaign, contact).await
    }
    async fn list(
        &self,
        campaign: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, tidings::StoreError> {
        self.inner.list(campaign, after, limit).await
    }
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, tidings::StoreError> {
        self.inner.forget_contact(contact).await
    }
}

/// A recipient is claimed only when a send follows: skips and render failures are recorded in
/// one write, so a crash can never leave them uncertain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_recipients_about_to_be_sent_to_are_claimed() {
    const N: usize = 200;
    let w = world(N).await;
    let outbox = Arc::new(ClaimLog {
        inner: MemoryOutbox::new(),
        claimed: Default::default(),
    });
    let campaign = newsletter("claims");
    let report = CampaignRunner::builder(w.directory.clone(), outbox.clone())
        .transports(w.transports.clone())
        .clock(w.clock.shared())
        .build()
        .run(&campaign, &RunControl::new())
        .await
        .unwrap();
    let mut claimed = outbox.claimed.lock().unwrap().clone();
    claimed.sort();
    let expected: Vec<ContactId> = (0..N)
        .filter(|&i| {
            matches!(
                kind(i),
                Kind::Active | Kind::ClosedWithEmail | Kind::ClosedOnly | Kind::EmailOnly
            )
        })
        .map(contact_id)
        .collect();
    assert_eq!(claimed, expected);
    let missing_plan = (0..N).filter(|&i| kind(i) == Kind::MissingPlan).count() as u64;
    assert_eq!(
        report.this_run.failed, missing_plan,
        "render failures are recorded"
    );
    assert_eq!(report.this_run.recipients(), N as u64);
}

/// An e-mail-only directory of `n` contacts.
fn email_directory(n: usize) -> Arc<MemoryDirectory> {
    let directory = Arc::new(MemoryDirectory::new());
    for i in 0..n {
        let mut c = Contact::new(contact_id(i));
        c.addresses
            .push(Address::email(format!("u{i}@example.org")).unwrap());
        directory.insert(c).unwrap();
    }
    directory
}

fn email_campaign(id: &str) -> Campaign {
    Campaign::builder(CampaignId::new(id).unwrap(), Segment::everyone(), "Hello")
        .channels([Channel::Email])
        .build()
        .unwrap()
}

fn email_runner(
    directory: &Arc<MemoryDirectory>,
    outbox: Arc<dyn Outbox>,
    email: &Arc<StubTransport>,
) -> CampaignRunner {
    email_runner_builder(directory, outbox, email).build()
}

fn email_runner_builder(
    directory: &Arc<MemoryDirectory>,
    outbox: Arc<dyn Outbox>,
    email: &Arc<StubTransport>,
) -> CampaignRunnerBuilder {
    CampaignRunner::builder(directory.clone(), outbox)
        .transport(email.clone())
        .concurrency(4)
        .retries(1, Duration::from_millis(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_run_instead_of_failing_everyone() {
    let directory = email_directory(100);
    let outbox = Arc::new(MemoryOutbox::new());
    let broken = Arc::new(
        StubTransport::new(Channel::Email)
            .with_permanent_failure(tidings::DeliveryError::unauthorized("token expired")),
    );
    let campaign = email_campaign("expired-token");
    let err = email_runner(&directory, outbox.clone(), &broken)
        .run(&campaign, &RunControl::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tidings::newsletter::CampaignError::Unauthorized(r) if r.contains("token expired")),
        "{err:?}"
    );
    let recorded = outbox.list(campaign.id(), None, 1000).await.unwrap();
    assert!(
        !recorded.is_empty() && recorded.len() <= 8,
        "only the recipients in flight were tried: {}",
        recorded.len()
    );
    assert!(recorded.iter().all(|r| !r.outcome.is_pending()));

    // Credentials fixed: the rest of the list goes out.
    let fixed = Arc::new(StubTransport::new(Channel::Email));
    let report = email_runner(&directory, outbox, &fixed)
        .run(&campaign, &RunControl::new())
        .await
        .unwrap();
    assert_eq!(report.this_run.sent as usize, 100 - recorded.len());
}

/// Fails `finish` for one contact, as a database might.
struct FlakyOutbox {
    inner: MemoryOutbox,
    fail_for: ContactId,
}

#[async_trait::async_trait]
impl Outbox for FlakyOutbox {
    async fn record(
        &self,
        record: &OutcomeRecord,
    ) -> Result<tidings::newsletter::Recorded, tidings::StoreError> {
        self.inner.record(record).await
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), tidings::StoreError> {
        if record.contact == self.fail_for {
            return Err(tidings::StoreError::backend("connection reset"));
        }
        self.inner.finish(record).await
    }
    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, tidings::StoreError> {
        self.inner.get(campaign, contact).await
    }
    async fn list(
        &self,
        campaign: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, tidings::StoreError> {
        self.inner.list(campaign, after, limit).await
    }
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, tidings::StoreError> {
        self.inner.forget_contact(contact).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_stops_the_run_after_the_sends_in_flight_are_recorded() {
    let directory = email_directory(100);
    let outbox = Arc::new(FlakyOutbox {
        inner: MemoryOutbox::new(),
        fail_for: contact_id(10),
    });
    let email = Arc::new(StubTransport::new(Channel::Email));
    let campaign = email_campaign("flaky-store");
    let err = email_runner(&directory, outbox.clone(), &email)
        .run(&campaign, &RunControl::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tidings::newsletter::CampaignError::Store(_)),
        "{err:?}"
    );
    let recorded = outbox.list(campaign.id(), None, 1000).await.unwrap();
    let pending: Vec<_> = recorded.iter().filter(|r| r.outcome.is_pending()).collect();
    assert_eq!(
        pending.len(),
        1,
        "only the recipient whose record failed stays pending"
    );
    assert_eq!(pending[0].contact, contact_id(10));
    assert!(
        recorded.len() < 100,
        "no new recipient was taken after the error"
    );
    assert_eq!(email.sent().len(), recorded.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_pauses_do_not_use_up_a_recipients_retries() {
    let directory = email_directory(1);
    let email = Arc::new(StubTransport::new(Channel::Email));
    for _ in 0..6 {
        email.push_failure(
            tidings::DeliveryError::retryable("rate limited")
                .with_retry_after(Duration::from_millis(5)),
        );
    }
    let report = email_runner(&directory, Arc::new(MemoryOutbox::new()), &email)
        .run(&email_campaign("patient"), &RunControl::new())
        .await
        .unwrap();
    assert_eq!(report.this_run.sent, 1, "{report:?}");
    assert_eq!(email.attempts(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_rate_limit_pause_leaves_nothing_pending() {
    let directory = email_directory(50);
    let outbox = Arc::new(MemoryOutbox::new());
    let email = Arc::new(StubTransport::new(Channel::Email));
    email.push_failure(
        tidings::DeliveryError::retryable("rate limited")
            .with_retry_after(Duration::from_millis(300)),
    );
    let campaign = email_campaign("cancel-in-pause");
    let control = RunControl::new();
    let runner = email_runner_builder(&directory, outbox.clone(), &email)
        .concurrency(1)
        .build();
    let run = tokio::spawn({
        let campaign = campaign.clone();
        let control = control.clone();
        async move { runner.run(&campaign, &control).await }
    });
    // The first recipient hit the rate limit; the campaign waits out the pause.
    while email.attempts() < 1 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    control.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends soon after the pause")
        .unwrap()
        .unwrap();
    assert!(report.cancelled);
    // The claimed recipient was sent once the pause ended; nobody else was claimed.
    let recorded = outbox.list(campaign.id(), None, 1000).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(matches!(recorded[0].outcome, Outcome::Sent { .. }));
    assert_eq!(email.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_pauses_every_sender_not_just_the_one_that_hit_it() {
    use tidings::clock::SystemClock;
    let directory = email_directory(20);
    let email = Arc::new(StubTransport::new(Channel::Email));
    email.push_failure(
        tidings::DeliveryError::retryable("rate limited")
            .with_retry_after(Duration::from_millis(300)),
    );
    let started = SystemClock.now();
    let report = email_runner(&directory, Arc::new(MemoryOutbox::new()), &email)
        .run(&email_campaign("paused-together"), &RunControl::new())
        .await
        .unwrap();
    assert_eq!(report.this_run.sent, 20);
    // Only the sends already in flight when the limit hit (concurrency 4) go out early; every
    // other recipient waits for the pause to end.
    let early = email
        .sent()
        .iter()
        .filter(|s| s.receipt.at < started.saturating_add(Duration::from_millis(250)))
        .count();
    assert!(early <= 4, "{early} sends went out during the pause");
}

#[tokio::test]
async fn a_segment_the_store_cannot_evaluate_is_refused_before_anyone_is_claimed() {
    // This directory has no last-inbound record, so it cannot tell who is active: the run is
    // refused up front instead of treating everyone as inactive.
    let w = world(20).await;
    let campaign = Campaign::builder(
        CampaignId::new("active-only").unwrap(),
        Segment::negate(Segment::active_within(Channel::Messenger, 24).unwrap()).unwrap(),
        "We miss you!",
    )
    .build()
    .unwrap();
    let result = w.runner().run(&campaign, &RunControl::new()).await;
    match result {
        Err(tidings::newsletter::CampaignError::Store(e)) => {
            assert!(e.to_string().contains("active_within"), "{e}")
        }
        other => panic!("expected the segment to be refused, got {other:?}"),
    }
    assert!(w.outcomes(campaign.id()).await.is_empty());
    assert!(w.fake.sent().is_empty());
}

/// With `record_in`, each message sent is an outgoing entry of its recipient's conversation,
/// by `campaign:<id>`, and the delivery receipt the transport reports later lands on it; a
/// recipient who was skipped gets no entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_messages_appear_in_the_inbox_and_their_receipts_land_on_them() {
    use tidings::inbox::{DeliveryStatus, EntryContent, Inbox, StatusUpdate};
    let w = world(12).await;
    let inbox = Arc::new(tidings::store::memory::MemoryInbox::new());
    let campaign = newsletter("inbox-visible");
    let report = w
        .runner_builder()
        .record_in(inbox.clone())
        .build()
        .run(&campaign, &RunControl::new())
        .await
        .unwrap();
    assert!(report.total.sent > 0);
    let mut entries = 0;
    for record in w.outcomes(campaign.id()).await {
        let conversation = inbox.conversation(&record.contact, 10).await.unwrap();
        match &record.outcome {
            Outcome::Sent {
                channel,
                message_ids,
            } => {
                let [entry] = &conversation[..] else {
                    panic!("one entry for {}: {conversation:?}", record.contact)
                };
                let EntryContent::Outgoing(out) = &entry.content else {
                    panic!("an outgoing entry: {entry:?}")
                };
                assert_eq!(out.author.as_deref(), Some("campaign:inbox-visible"));
                assert!(out.message.text_body().starts_with("Hi "), "{out:?}");
                assert_eq!(out.deliveries[0].channel, *channel);
                assert_eq!(&out.deliveries[0].message_ids, message_ids);
                entries += 1;
                if *channel == Channel::Messenger {
                    let moved = inbox
                        .update_status(&StatusUpdate::Message {
                            channel: Channel::Messenger,
                            message_id: message_ids[0].clone(),
                            status: DeliveryStatus::Delivered,
                        })
                        .await
                        .unwrap();
                    assert_eq!(moved, 1, "the receipt lands on the campaign's entry");
                }
            }
            _ => assert!(conversation.is_empty(), "no entry for {record:?}"),
        }
    }
    assert_eq!(entries as u64, report.total.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_by_email_whoever_a_reply_would_reach_by_email() {
    use tidings::{
        contact::NewContact,
        identity::Directory,
        inbox::{Reply, Support},
        message::Message,
        store::memory::MemoryInbox,
    };
    let directory = Arc::new(MemoryDirectory::new());
    // Ann's e-mail is only in `Contact.email`, as a host importing its users sets it.
    let ann = directory
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    // Bob has a linked e-mail address: that one is used, once.
    let bob = directory
        .create(
            NewContact::new()
                .with_email("bob.old@example.org")
                .with_address(Address::email("bob@example.org").unwrap()),
        )
        .await
        .unwrap();
    // An auto-registered visitor's technical address reaches nobody.
    let visitor = directory
        .create(
            NewContact::new()
                .with_email("fb-123@users.school.example")
                .with_field(tidings::contact::TECHNICAL_FIELD, true),
        )
        .await
        .unwrap();
    let email = Arc::new(StubTransport::new(Channel::Email));
    let mut transports = TransportSet::new();
    transports.insert(email.clone() as SharedTransport);
    let outbox = Arc::new(MemoryOutbox::new());
    let campaign = Campaign::builder(
        CampaignId::new("by-mail").unwrap(),
        Segment::everyone(),
        "Lesson 5 is open",
    )
    .channels([Channel::Email])
    .build()
    .unwrap();
    let report = CampaignRunner::builder(directory.clone(), outbox.clone())
        .transports(transports)
        .build()
        .run(&campaign, &RunControl::new())
        .await
        .unwrap();
    let to: Vec<String> = email.sent().iter().map(|s| s.to.to_string()).collect();
    assert_eq!(to.len(), 2, "{to:?}");
    assert!(to.iter().any(|a| a.contains("ann@example.org")), "{to:?}");
    assert!(to.iter().any(|a| a.contains("bob@example.org")), "{to:?}");
    assert_eq!(report.this_run.sent, 2);
    let visitor_outcome = outbox
        .get(campaign.id(), &visitor.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            visitor_outcome.outcome,
            Outcome::Skipped {
                reason: SkipReason::NoAddress
            }
        ),
        "{visitor_outcome:?}"
    );
    // The same rule as a support reply's: Ann is reached by e-mail there too.
    let support = Support::builder(directory.clone(), Arc::new(MemoryInbox::new()))
        .clock(tidings::clock::SystemClock::shared())
        .transport(email.clone())
        .build();
    assert_eq!(
        support
            .transports_for(&ann.id)
            .await
            .unwrap()
            .iter()
            .filter(|o| o.channel == Channel::Email && o.available())
            .count(),
        1
    );
    support
        .reply(
            &ann.id,
            Reply::new(Message::text("Welcome!").unwrap(), [Channel::Email]),
        )
        .await
        .unwrap();
    assert_eq!(email.sent().len(), 3);
    let _ = bob;
}
