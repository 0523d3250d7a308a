//! Two instances of the `messenger_bot` example on one PostgreSQL database, behind no balancer:
//! Meta's batches reach both at once, and again (redeliveries). Each message lands in the inbox
//! once, each person writing for the first time is registered once, and each connect gets one
//! confirmation. Skipped (saying so) without `TIDINGS_POSTGRES_URL`.

#[path = "support/bot.rs"]
mod bot;
#[path = "support/postgres.rs"]
mod support;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
};

use bot::{Bot, PAGE, free_port, start_bot};
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, SystemClock, Timestamp},
    contact::{Contact, ContactId},
    identity::Directory,
    inbox::{EntryContent, Inbox},
    testkit::{graph::FakeGraph, user::FakeUser},
};

/// People who write without an account (auto-registered).
const WRITERS: usize = 12;
/// Students who connect their account through an m.me link.
const STUDENTS: usize = 4;
/// Rounds of batches; each round every writer writes once.
const ROUNDS: usize = 4;

fn writer_psid(u: usize) -> String {
    format!("880{u:03}")
}

fn student_psid(k: usize) -> String {
    format!("990{k:03}")
}

/// Delivers `body` to both instances at once, each as Meta would (again after a 503); how
/// many deliveries had to be made again.
async fn both(a: &Bot, b: &Bot, body: &Value) -> usize {
    let (x, y) = tokio::join!(a.deliver(body), b.deliver(body));
    x + y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bot_instances_given_the_same_batches_route_each_event_once() {
    let Some(db) = support::TestDatabase::create("bot_instances").await else {
        return;
    };
    let stores = db.stores().await;
    // Students with accounts on the platform, to connect Messenger to.
    for k in 0..STUDENTS {
        let mut student = Contact::new(ContactId::new(format!("student-{k}")).unwrap());
        student.first_name = Some(format!("Student{k}"));
        stores.directory().insert(&student).await.unwrap();
    }
    let graph = FakeGraph::builder()
        .page(PAGE, "page-token")
        .enforce_window(false)
        .listen(SocketAddr::from(([127, 0, 0, 1], free_port())))
        .start()
        .await
        .unwrap();
    let a = start_bot(&db.url, &graph.base_url(), free_port()).await;
    let b = start_bot(&db.url, &graph.base_url(), free_port()).await;

    // Connect links, from either instance: the token is the database's, not the process's.
    let mut refs = Vec::new();
    for k in 0..STUDENTS {
        let from = if k % 2 == 0 { &a } else { &b };
        let (status, link) = from
            .api(
                "POST",
                "/connect-links",
                Some(json!({"contact_id": format!("student-{k}")})),
            )
            .await;
        assert_eq!(status, 200, "{link}");
        let url = link["url"].as_str().unwrap();
        refs.push(url.split_once("?ref=").unwrap().1.to_owned());
    }

    let now = SystemClock.now();
    let at = |round: usize, i: usize| {
        Timestamp::from_millis(now.as_millis() - 600_000 + (round * 1_000 + i) as i64)
    };
    // Round 0 splits each writer's first two messages over two batches that reach the two
    // instances at the same moment, then each batch reaches the other instance: the writers are
    // unknown, so both instances try to register each of them at once.
    let first = FakeUser::batch((0..WRITERS).map(|u| {
        FakeUser::new(PAGE, writer_psid(u)).text(&format!("m-0a-{u}"), &format!("0a {u}"), at(0, u))
    }));
    let second = FakeUser::batch((0..WRITERS).map(|u| {
        FakeUser::new(PAGE, writer_psid(u)).text(
            &format!("m-0b-{u}"),
            &format!("0b {u}"),
            at(0, 100 + u),
        )
    }));
    let mut again = 0;
    let (x, y) = tokio::join!(a.deliver(&first), b.deliver(&second));
    again += x + y;
    let (x, y) = tokio::join!(b.deliver(&first), a.deliver(&second));
    again += x + y;
    // The students connect (one batch, to both at once, twice), then every round each writer
    // and each student writes, to both instances at once, and again.
    let connects = FakeUser::batch(
        (0..STUDENTS).map(|k| FakeUser::new(PAGE, student_psid(k)).referral(&refs[k], at(1, k))),
    );
    again += both(&a, &b, &connects).await;
    again += both(&a, &b, &connects).await;
    for round in 1..ROUNDS {
        let batch = FakeUser::batch(
            (0..WRITERS)
                .map(|u| {
                    FakeUser::new(PAGE, writer_psid(u)).text(
                        &format!("m-{round}-{u}"),
                        &format!("{round} {u}"),
                        at(round + 1, u),
                    )
                })
                .chain((0..STUDENTS).map(|k| {
                    FakeUser::new(PAGE, student_psid(k)).text(
                        &format!("m-{round}-s{k}"),
                        &format!("{round} s{k}"),
                        at(round + 1, 100 + k),
                    )
                })),
        );
        again += both(&a, &b, &batch).await;
        again += both(&a, &b, &batch).await;
    }

    // One contact per person who wrote: the writers registered once each, the students linked.
    let directory = stores.directory();
    let mut writers = Vec::new();
    for u in 0..WRITERS {
        let address = tidings::contact::Address::messenger(PAGE, writer_psid(u)).unwrap();
        let contact = directory
            .find_by_address(&address)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("writer {u} was registered"));
        writers.push(contact.id);
    }
    let registered: usize = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM contacts")
        .fetch_one(stores.pool())
        .await
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        registered,
        WRITERS + STUDENTS,
        "each writer registered once, beside the students"
    );
    for k in 0..STUDENTS {
        let address = tidings::contact::Address::messenger(PAGE, student_psid(k)).unwrap();
        let contact = directory.find_by_address(&address).await.unwrap().unwrap();
        assert_eq!(contact.id.as_str(), format!("student-{k}"), "linked");
    }

    // One inbox entry per message, in the order written.
    let inbox = stores.inbox();
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let people = writers
        .iter()
        .cloned()
        .chain((0..STUDENTS).map(|k| ContactId::new(format!("student-{k}")).unwrap()));
    for contact in people {
        let entries = inbox.conversation(&contact, 1_000).await.unwrap();
        let list = texts.entry(contact.to_string()).or_default();
        for entry in entries {
            if let EntryContent::Incoming(incoming) = &entry.content {
                list.extend(incoming.text.clone());
            }
        }
    }
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for list in texts.values() {
        for text in list {
            *copies.entry(text.as_str()).or_default() += 1;
        }
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded twice: {twice:?}");
    assert_eq!(
        copies.len(),
        WRITERS * (ROUNDS + 1) + STUDENTS * (ROUNDS - 1),
        "every message recorded: {texts:?}"
    );
    for (u, contact) in writers.iter().enumerate() {
        let mut expected = vec![format!("0a {u}"), format!("0b {u}")];
        expected.extend((1..ROUNDS).map(|r| format!("{r} {u}")));
        assert_eq!(texts[contact.as_str()], expected, "writer {u}, in order");
    }

    // One reply per event that asks for one: the confirmation of each connect, once.
    let sent = graph.sent();
    let mut replies: HashMap<&str, Vec<Option<&str>>> = HashMap::new();
    for request in &sent {
        replies
            .entry(request.recipient.as_str())
            .or_default()
            .push(request.text());
    }
    for k in 0..STUDENTS {
        assert_eq!(
            replies.get(student_psid(k).as_str()),
            Some(&vec![Some(
                "Your Messenger is now connected to your account."
            )]),
            "student {k}: one confirmation"
        );
    }
    assert_eq!(sent.len(), STUDENTS, "nothing else was sent: {sent:?}");
    eprintln!("deliveries answered 503 or 500 and made again: {again}");
}
