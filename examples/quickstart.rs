//! Quickstart: the whole mission in one run, on the fake Graph API (no Facebook account, no
//! network), printed as a transcript.
//!
//! 1. A platform user connects Messenger through an `m.me` link.
//! 2. A desktop visitor writes without a ref: auto-registered under a technical e-mail, then
//!    merged into their real profile when they tap their own connect link (after saying yes).
//! 3. The user writes to support; the message lands in the inbox.
//! 4. An agent replies with "messenger" ticked; the transcript shows the transport under the
//!    message, then the delivery and read receipts.
//! 5. A newsletter to a segment, with template variables and "authorize on click" login links,
//!    runs with a progress bar and ends with a summary by channel and reason.
//! 6. A flow asks a question with three answers and follows the branch the user picks.
//!
//! The stores are SQLite, in `quickstart.db` under the working directory (`--memory` for the
//! in-memory ones); a second run shows what the first left. The exit code is 0 only if every
//! step did what it says.
//!
//! ```sh
//! cargo run --example quickstart --features testkit,sqlite
//! cargo run --example quickstart --features testkit,sqlite -- --memory
//! ```

use std::{
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, ManualClock, SystemClock},
    contact::{Address, Channel, ContactId, NewContact},
    hub::{Hub, HubResponse, Routed},
    identity::{ConnectOutcome, ConnectPolicy, Connector},
    inbox::{DeliveryStatus, EntryContent, Reply, Support},
    keys::{KeyRing, SigningKey},
    message::{Message, Receipt},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook, link::connect_link,
    },
    newsletter::{Campaign, CampaignId, CampaignRunner, RunControl, login::LoginLinks},
    process::{Flow, FlowEngine, FlowId, ProcessEngine},
    secrecy::SecretSlice,
    segment::Segment,
    store::Stores,
    template::CampaignVars,
    testkit::{
        graph::{FakeGraph, SentRequest},
        user::FakeUser,
    },
    token::Tokens,
    transport::{
        Capabilities, DeliveryError, SendContext, SharedTransport, Transport, TransportSet,
        ensure_channel,
    },
};
use url::Url;

const PAGE: &str = "104812345678901";
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Students in the newsletter's segment besides Ann and Bob, four kinds of ten.
const STUDENTS: usize = 40;

/// The host's mailer, plugged in as a transport: it counts, and prints what the story needs.
struct Mailer {
    clock: ManualClock,
    sent: AtomicUsize,
    quiet: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Transport for Mailer {
    fn channel(&self) -> &Channel {
        &Channel::Email
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        _ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        ensure_channel(&Channel::Email, to)?;
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.quiet.load(Ordering::SeqCst) {
            println!("     [mail to {}] {}", to.id(), message.text_body());
        }
        Ok(Receipt::new(
            Channel::Email,
            vec![format!("mail-{n}")],
            self.clock.now(),
        ))
    }
}

/// Every step's claim, checked; the exit code says whether all held.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, held: bool, what: &str) {
        if held {
            println!("   ✓ {what}");
        } else {
            println!("   ✗ {what}");
            self.failed.push(what.to_owned());
        }
    }
}

/// Meta's side and the platform's, wired together.
struct World {
    clock: ManualClock,
    graph: FakeGraph,
    secret: AppSecret,
    hub: Hub,
    webhook: Webhook,
}

impl World {
    /// What `user` did reaches Meta (which opens the messaging window on its side) and comes
    /// to the Hub as a webhook body, signed as Meta signs it.
    async fn deliver(&self, user: &FakeUser, body: &Value) -> Result<HubResponse, Box<dyn Error>> {
        self.graph
            .user_wrote(user.page_id(), user.psid(), self.clock.now());
        let bytes = serde_json::to_vec(body)?;
        let request = http::Request::post("/webhook")
            .header("X-Hub-Signature-256", FakeUser::sign(&bytes, &self.secret))
            .body(Bytes::from(bytes))?;
        let handled = self.hub.handle(&self.webhook, &request).await;
        for (_, routed) in &handled.routed {
            println!("     hub: {}", describe(routed));
        }
        Ok(handled)
    }

    /// The messages the fake Graph API accepted for `psid`.
    fn sent_to(&self, psid: &str) -> Vec<SentRequest> {
        self.graph
            .sent()
            .into_iter()
            .filter(|s| s.recipient == psid && s.message_id.is_some())
            .collect()
    }
}

fn describe(routed: &Routed) -> String {
    match routed {
        Routed::Connected(ConnectOutcome::Linked { contact }) => {
            format!("linked to contact {}", contact.id)
        }
        Routed::Connected(ConnectOutcome::Confirm(_)) => "asked before linking".into(),
        Routed::Connected(ConnectOutcome::Merged { technical, contact }) => {
            format!(
                "merged the technical contact {technical} into {}",
                contact.id
            )
        }
        Routed::Connected(other) => format!("connect: {other:?}"),
        Routed::Inbox { contact, entry, .. } => format!("inbox entry {entry} of contact {contact}"),
        Routed::Receipt { updated } => format!("receipt: {updated} delivery record(s) moved"),
        Routed::Process { .. } => "an answer, to the flow".into(),
        other => format!("{other:?}"),
    }
}

/// The (title, payload) of each button the fake Graph API received in `sent`.
fn buttons(sent: &SentRequest) -> Vec<(String, String)> {
    let message = &sent.body["message"];
    let from_template = message["attachment"]["payload"]["buttons"].as_array();
    let from_quick_replies = message["quick_replies"].as_array();
    from_template
        .or(from_quick_replies)
        .map(|buttons| {
            buttons
                .iter()
                .map(|b| {
                    (
                        b["title"].as_str().unwrap_or_default().to_owned(),
                        b["payload"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key(bytes: &[u8]) -> SecretSlice<u8> {
    // In production keys come from the host's secret store.
    SecretSlice::from(bytes.to_vec())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let memory = std::env::args().any(|a| a == "--memory");
    let mut checks = Checks::default();
    let clock = ManualClock::new(SystemClock.now());
    let secret = AppSecret::new("quickstart-app-secret");

    // The stores: SQLite in a file under the working directory, or in memory.
    let stores = if memory {
        Stores::memory()
    } else {
        Stores::open("quickstart.db").await?
    };
    // Each run adds its own people, so a run can follow another on the same file.
    let ann_tag = Segment::tag("quickstart-ann")?;
    let run = stores.segments.count(&ann_tag).await?.unwrap_or(0) + 1;
    println!(
        "tidings quickstart, run {run} ({} stores)",
        stores.backend()
    );
    if run > 1 {
        let earlier = CampaignRunner::builder(stores.segments.clone(), stores.outbox.clone())
            .transports(TransportSet::new())
            .build()
            .recorded(&CampaignId::new(format!("lesson-4-run{}", run - 1))?)
            .await?;
        let conversations = stores.inbox.conversations(None, 1000).await?;
        println!(
            "   the database remembers the earlier runs: {} conversation(s); run {}'s newsletter \
             reached {} recipient(s) ({} sent, {} skipped)",
            conversations.conversations.len(),
            run - 1,
            earlier.recipients(),
            earlier.sent,
            earlier.skipped_total()
        );
    }
    let psid = |who: u64| format!("{}{run:04}{who:03}", 6_789_012_345_u64);
    // Message ids are unique for good: the webhook drops an id it has seen as a redelivery.
    let mid = |name: &str| format!("m_run{run}_{name}");

    // Meta's side, simulated: the Graph API on loopback.
    let graph = FakeGraph::builder()
        .page(PAGE, "page-token")
        .app_secret(secret.clone())
        .clock(clock.shared())
        .start()
        .await?;

    // The platform's side: the Messenger transport and webhook, a mailer, connecting, the Hub.
    let page = PageConfig::new(PAGE, PageAccessToken::new("page-token")).with_username("school");
    let pages = Arc::new(StaticPages::new([page.clone()]));
    let messenger: SharedTransport = Arc::new(
        MessengerTransport::builder(pages.clone(), stores.last_inbound.clone())
            .base_url(graph.base_url())
            .app_secret(secret.clone())
            .clock(clock.shared())
            .build()?,
    );
    let mailer = Arc::new(Mailer {
        clock: clock.clone(),
        sent: AtomicUsize::new(0),
        quiet: std::sync::atomic::AtomicBool::new(false),
    });
    let webhook = Webhook::builder(
        secret.clone(),
        VerifyToken::new("verify-me"),
        pages,
        stores.seen.clone(),
        stores.last_inbound.clone(),
    )
    .clock(clock.shared())
    .build();
    let connector = Connector::builder(
        stores.directory.clone(),
        stores.seen.clone(),
        Tokens::new(SigningKey::new(
            1,
            key(b"quickstart connect-token key 0123"),
        )?)
        .with_clock(clock.shared()),
    )
    .clock(clock.shared())
    .policy(ConnectPolicy::new().with_auto_register(true))
    .build();
    let check_in = Flow::builder(FlowId::new("check-in")?, 1)
        .question("ask", "How is the course going?", |q| {
            q.option("Great", "great")
                .option("Too fast", "slow")
                .option("I'm stuck", "stuck")
        })
        .send("great", "Wonderful! Lesson 5 is open.", "done")
        .send(
            "slow",
            "Take your time. I'll check in again next week.",
            "done",
        )
        .handover("stuck", Some("A tutor will answer you here."), "done")
        .end("done")
        .build();
    let flows = FlowEngine::builder(
        stores.processes.clone(),
        stores.directory.clone(),
        KeyRing::new(SigningKey::new(
            1,
            key(b"quickstart answer-payload key 012"),
        )?),
    )
    .transport(messenger.clone())
    .clock(clock.shared())
    .record_in(stores.inbox.clone())
    .build();
    flows.define(check_in)?;
    let hub = Hub::builder(
        connector.clone(),
        stores.directory.clone(),
        stores.inbox.clone(),
    )
    .opt_ins(stores.opt_ins.clone())
    .thread_owners(stores.thread_owners.clone())
    .transport(messenger.clone())
    .processes(Arc::new(flows.clone()))
    .confirmation(Message::text(
        "You're connected: your school's messages will arrive here.",
    )?)
    .build();
    let w = World {
        clock: clock.clone(),
        graph,
        secret,
        hub,
        webhook,
    };
    let directory = stores.directory.clone();
    let student = |first: &str, email: Option<String>| {
        let mut new = NewContact::new()
            .with_name(first, "Lee")
            .with_tag("student")
            .with_tag(format!("run-{run}"));
        if let Some(email) = email {
            new = new.with_email(email);
        }
        new
    };

    println!("\n1. The platform knows Ann by e-mail and shows her a connect link; she taps it.");
    let ann = directory
        .create(
            student("Ann", Some(format!("ann.run{run}@example.org"))).with_tag("quickstart-ann"),
        )
        .await?;
    let token = connector.connect_token(&ann.id, Some(PAGE))?;
    println!("   {}", connect_link(&page, &token));
    let ann_psid = psid(1);
    let ann_on_messenger = FakeUser::new(PAGE, &ann_psid);
    w.deliver(
        &ann_on_messenger,
        &ann_on_messenger.get_started_with_ref(&mid("gs1"), token.expose_secret(), clock.now()),
    )
    .await?;
    let linked = directory
        .find_by_address(&Address::messenger(PAGE, &ann_psid)?)
        .await?;
    checks.check(
        linked.is_some_and(|c| c.id == ann.id),
        "Ann's Messenger is linked to her account",
    );
    let confirmed = w
        .sent_to(&ann_psid)
        .last()
        .and_then(|s| s.text().map(str::to_owned));
    checks.check(
        confirmed.as_deref() == Some("You're connected: your school's messages will arrive here."),
        "she got the confirmation on Messenger",
    );

    println!("\n2. A desktop visitor writes without a ref; later they turn out to be Bob.");
    let visitor_psid = psid(2);
    let visitor = FakeUser::new(PAGE, &visitor_psid);
    clock.advance(Duration::from_secs(30));
    w.deliver(
        &visitor,
        &visitor.text(&mid("v1"), "Hi! Do you have a Rust course?", clock.now()),
    )
    .await?;
    let technical = directory
        .find_by_address(&Address::messenger(PAGE, &visitor_psid)?)
        .await?
        .ok_or("the visitor was not registered")?;
    println!(
        "   auto-registered as {} with the technical e-mail {}",
        technical.id,
        technical.email.as_deref().unwrap_or("-")
    );
    checks.check(
        technical.is_technical(),
        "the visitor got a technical contact",
    );
    let bob = directory
        .create(student("Bob", Some(format!("bob.run{run}@example.org"))))
        .await?;
    let bobs_link = connector.connect_token(&bob.id, Some(PAGE))?;
    println!("   Bob signs up on the platform and taps his own connect link from that Messenger:");
    clock.advance(Duration::from_secs(60));
    w.deliver(
        &visitor,
        &visitor.referral(bobs_link.expose_secret(), clock.now()),
    )
    .await?;
    let question = w
        .sent_to(&visitor_psid)
        .pop()
        .ok_or("no question was asked")?;
    println!("     asked: {:?}", question.text().unwrap_or_default());
    let yes = buttons(&question)
        .into_iter()
        .find(|(title, _)| title == "Yes")
        .map(|(_, payload)| payload)
        .ok_or("the question has no Yes")?;
    w.deliver(
        &visitor,
        &visitor.postback(&mid("v_yes"), "Yes", &yes, clock.now()),
    )
    .await?;
    let owner = directory
        .find_by_address(&Address::messenger(PAGE, &visitor_psid)?)
        .await?;
    checks.check(
        owner.is_some_and(|c| c.id == bob.id),
        "after his Yes, the visitor's Messenger is Bob's",
    );
    let bobs = stores.inbox.conversation(&bob.id, 10).await?;
    checks.check(
        bobs.iter().any(|e| matches!(&e.content, EntryContent::Incoming(i) if i.text.as_deref() == Some("Hi! Do you have a Rust course?"))),
        "the visitor's first message moved into Bob's conversation",
    );

    println!("\n3. Ann writes to support; the Hub puts it in the inbox.");
    clock.advance(Duration::from_secs(60));
    w.deliver(
        &ann_on_messenger,
        &ann_on_messenger.text(&mid("1"), "Is lesson 3 out yet?", clock.now()),
    )
    .await?;
    let conversation = stores.inbox.conversation(&ann.id, 10).await?;
    checks.check(
        conversation.iter().any(|e| matches!(&e.content, EntryContent::Incoming(i) if i.text.as_deref() == Some("Is lesson 3 out yet?"))),
        "the message is in Ann's conversation",
    );

    println!("\n4. An agent replies with \"messenger\" ticked; receipts come back.");
    let support = Support::builder(stores.directory.clone(), stores.inbox.clone())
        .clock(clock.shared())
        .transport(messenger.clone())
        .transport(mailer.clone())
        .build();
    let options = support.transports_for(&ann.id).await?;
    let ticks: Vec<String> = options
        .iter()
        .filter(|o| o.available())
        .map(|o| o.channel.to_string())
        .collect();
    println!("   the reply box offers: {}", ticks.join(", "));
    let reply = Reply::new(
        Message::text("Yes! It opened this morning.")?,
        [Channel::Messenger],
    )
    .by("agent-7");
    let report = support.reply(&ann.id, reply).await?;
    let reply_mid = report
        .deliveries
        .first()
        .and_then(|d| d.message_ids.first().cloned())
        .ok_or("the reply was not sent")?;
    let status = |id: &ContactId| {
        let inbox = stores.inbox.clone();
        let (id, entry) = (id.clone(), report.entry.clone());
        async move {
            let entries = inbox.conversation(&id, 50).await.ok()?;
            let entry = entries.into_iter().find(|e| e.id == entry)?;
            match entry.content {
                EntryContent::Outgoing(o) => o.deliveries.first().map(|d| d.status),
                _ => None,
            }
        }
    };
    println!("   under the reply: messenger, {:?}", status(&ann.id).await);
    checks.check(
        status(&ann.id).await == Some(DeliveryStatus::Sent),
        "the reply went through Messenger",
    );
    clock.advance(Duration::from_secs(5));
    w.deliver(
        &ann_on_messenger,
        &ann_on_messenger.delivery(&[&reply_mid], clock.now()),
    )
    .await?;
    println!("   under the reply: messenger, {:?}", status(&ann.id).await);
    let delivered = status(&ann.id).await == Some(DeliveryStatus::Delivered);
    clock.advance(Duration::from_secs(5));
    w.deliver(&ann_on_messenger, &ann_on_messenger.read(clock.now()))
        .await?;
    println!("   under the reply: messenger, {:?}", status(&ann.id).await);
    checks.check(
        delivered && status(&ann.id).await == Some(DeliveryStatus::Read),
        "the transcript shows it delivered, then read",
    );

    println!("\n5. A newsletter to this run's students, with variables and login links.");
    // Ten of each: Messenger inside the window; Messenger closed, with e-mail; e-mail only;
    // Messenger closed, no e-mail.
    for i in 0..STUDENTS {
        let name = format!("S{i:02}");
        let email = matches!(i % 4, 1 | 2).then(|| format!("s{i}.run{run}@example.org"));
        let mut new = student(&name, email);
        if i % 4 != 2 {
            let address = Address::messenger(PAGE, psid(100 + i as u64))?;
            new = new.with_address(address);
            let wrote = if i % 4 == 0 {
                clock.now().saturating_sub(Duration::from_secs(3600))
            } else {
                clock.now().saturating_sub(3 * DAY)
            };
            w.graph
                .user_wrote_in(
                    stores.last_inbound.as_ref(),
                    PAGE,
                    &psid(100 + i as u64),
                    wrote,
                )
                .await?;
        }
        directory.create(new).await?;
    }
    let login = LoginLinks::new(
        Tokens::new(SigningKey::new(
            1,
            key(b"quickstart login-link key 0123456"),
        )?)
        .with_clock(clock.shared()),
        Url::parse("https://school.example/login")?,
    )?
    .clock(clock.shared());
    let segment = Segment::from_json(
        &json!({"all": [{"tag": "student"}, {"tag": format!("run-{run}")}]}).to_string(),
    )?;
    let campaign = Campaign::builder(
        CampaignId::new(format!("lesson-4-run{run}"))?,
        segment,
        "Hi {{ first_name }}! Lesson {{ campaign.lesson }} is out: https://school.example/lessons/4",
    )
    .channels([Channel::Messenger, Channel::Email])
    .vars(CampaignVars::from_json(json!({"lesson": 4}))?)
    .login_links(login.clone())
    .build()?;
    let mut transports = TransportSet::new();
    transports.insert(messenger.clone());
    transports.insert(mailer.clone());
    let runner = CampaignRunner::builder(stores.segments.clone(), stores.outbox.clone())
        .transports(transports)
        .clock(clock.shared())
        .record_in(stores.inbox.clone())
        .build();
    let control = RunControl::new();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("   {bar:40} {pos}/{len} recipients")?.progress_chars("=> "),
    );
    let follow = {
        let (bar, mut progress) = (bar.clone(), control.progress());
        tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let p = progress.borrow_and_update().clone();
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.done + p.earlier);
                if p.finished {
                    break;
                }
            }
        })
    };
    mailer.quiet.store(true, Ordering::SeqCst);
    let report = runner.run(&campaign, &control).await?;
    mailer.quiet.store(false, Ordering::SeqCst);
    let _ = follow.await;
    bar.finish();
    let counts = &report.this_run;
    for (channel, n) in &counts.sent_by_channel {
        println!("   sent by {channel}: {n}");
    }
    for (reason, n) in &counts.skipped {
        println!("   skipped ({reason}): {n}");
    }
    println!("   failed: {}", counts.failed);
    let by = |channel: Channel| counts.sent_by_channel.get(&channel).copied().unwrap_or(0);
    checks.check(
        by(Channel::Messenger) == 12 && by(Channel::Email) == 20 && counts.skipped_total() == 10,
        "12 by Messenger (inside the window), 20 by e-mail (closed window or no Messenger), \
         10 skipped (closed window, no e-mail)",
    );
    let to_ann = w
        .sent_to(&ann_psid)
        .into_iter()
        .filter_map(|s| s.text().map(str::to_owned))
        .find(|t| t.starts_with("Hi Ann!"))
        .unwrap_or_default();
    println!("   Ann reads: {to_ann}");
    let link = to_ann
        .split_whitespace()
        .find(|word| word.starts_with("https://school.example/login"))
        .and_then(|l| Url::parse(l).ok());
    let login_ok = match link {
        Some(link) => login
            .verify_query(link.query().unwrap_or(""))
            .await
            .is_ok_and(|l| {
                l.contact == ann.id && l.target.as_str() == "https://school.example/lessons/4"
            }),
        None => false,
    };
    checks.check(
        login_ok,
        "her link logs her in and leads to lesson 4 (authorize on click)",
    );

    println!("\n6. A flow asks Ann a question with three answers; she picks one.");
    flows.start(&FlowId::new("check-in")?, &ann.id).await?;
    let asked = w.sent_to(&ann_psid).pop().ok_or("no question")?;
    let answers = buttons(&asked);
    println!(
        "   asked {:?} with {:?}",
        asked.text().unwrap_or_default(),
        answers.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>()
    );
    checks.check(answers.len() == 3, "the question has three answers");
    let (title, payload) = answers
        .iter()
        .find(|(t, _)| t == "Too fast")
        .cloned()
        .ok_or("no \"Too fast\"")?;
    clock.advance(Duration::from_secs(20));
    w.deliver(
        &ann_on_messenger,
        &ann_on_messenger.postback(&mid("answer"), &title, &payload, clock.now()),
    )
    .await?;
    let answered = w
        .sent_to(&ann_psid)
        .pop()
        .and_then(|s| s.text().map(str::to_owned));
    println!("   the flow answers: {answered:?}");
    checks.check(
        answered.as_deref() == Some("Take your time. I'll check in again next week."),
        "the flow followed the \"Too fast\" branch",
    );

    println!("\n7. Ann's conversation, with the transport under each message:");
    for e in stores.inbox.conversation(&ann.id, 50).await? {
        match &e.content {
            EntryContent::Incoming(i) => println!(
                "   Ann            {}",
                i.text.as_deref().or(i.choice.as_deref()).unwrap_or("")
            ),
            EntryContent::Outgoing(o) => {
                let under: Vec<String> = o
                    .deliveries
                    .iter()
                    .map(|d| format!("{} {:?}", d.channel, d.status))
                    .collect();
                println!(
                    "   {:<14} {}  [{}]",
                    o.author.as_deref().unwrap_or("school"),
                    o.message.text_body(),
                    under.join(", ")
                );
            }
            _ => {}
        }
    }
    stores.close().await;

    if checks.failed.is_empty() {
        println!("\nEvery step did what it says.");
        Ok(())
    } else {
        println!("\n{} step(s) failed:", checks.failed.len());
        for what in &checks.failed {
            println!("   {what}");
        }
        std::process::exit(1);
    }
}
