//! The SQLite and PostgreSQL translations of segments select exactly the contacts
//! `Segment::matches_at` selects: random contacts, random segments, random page sizes,
//! compared with the memory directory, which evaluates the filter in Rust.

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use proptest::prelude::*;
use serde_json::{Value, json};
use tidings::{
    activity::LastInbound,
    clock::{ManualClock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    segment::{Cursor, FieldOp, Segment, SegmentQuery},
    store::{
        memory::{MemoryDirectory, MemoryLastInbound},
        sqlite::{SqliteOptions, SqliteStores},
    },
};

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

/// Field names, built-in ones and custom ones (one with characters a JSON path would need
/// quoted, one that shadows a built-in).
const NAMES: &[&str] = &[
    "id",
    "email",
    "first_name",
    "plan",
    "age",
    "score",
    "courses",
    "flag",
    "we\"ird.$[0]",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Few distinct values, shared by contacts and conditions, so that conditions match
        // often enough to tell right from wrong.
        3 => prop::sample::select(vec!["pro", "free", "", "Ann", "c1", "ann@example.org", "ü"])
            .prop_map(|s| json!(s)),
        2 => (0i64..4).prop_map(|n| json!(n)),
        1 => prop::sample::select(vec![1.5f64, 2.0, -0.5]).prop_map(|f| json!(f)),
        1 => any::<bool>().prop_map(|b| json!(b)),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => Just(Value::Null),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
        1 => Just(json!({"nested": 1})),
    ]
}

#[derive(Debug, Clone)]
struct Person {
    email: Option<&'static str>,
    first_name: Option<&'static str>,
    fields: Vec<(&'static str, Value)>,
    tags: Vec<&'static str>,
    messenger: bool,
    email_address: bool,
    /// Hours ago the person last wrote on Messenger, if ever.
    wrote: Option<u64>,
}

fn person() -> impl Strategy<Value = Person> {
    (
        prop::option::of(prop::sample::select(vec!["ann@example.org", "pro", "c1"])),
        prop::option::of(prop::sample::select(vec!["Ann", "ann", "", "ü"])),
        prop::collection::vec((prop::sample::select(NAMES.to_vec()), field_value()), 0..4),
        prop::collection::vec(
            prop::sample::select(vec!["vip", "trial", "x' OR 1=1"]),
            0..3,
        ),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u64..60),
    )
        .prop_map(
            |(email, first_name, fields, tags, messenger, email_address, wrote)| Person {
                email,
                first_name,
                fields,
                tags,
                messenger,
                email_address,
                wrote,
            },
        )
}

fn leaf() -> impl Strategy<Value = Segment> {
    let field = (
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(vec![
            FieldOp::Eq,
            FieldOp::Ne,
            FieldOp::Contains,
            FieldOp::Gt,
            FieldOp::Lt,
            FieldOp::Exists,
        ]),
        scalar(),
    )
        .prop_filter_map("valid field condition", |(name, op, value)| {
            let value = (op != FieldOp::Exists).then_some(value);
            Segment::field(name, op, value).ok()
        });
    prop_oneof![
        4 => field,
        1 => prop::sample::select(vec!["vip", "trial", "x' OR 1=1"])
            .prop_map(|t| Segment::tag(t).unwrap()),
        1 => prop::sample::select(vec![Channel::Messenger, Channel::Email])
            .prop_map(Segment::has_address),
        1 => (1u64..48).prop_map(|h| Segment::active_within(Channel::Messenger, h).unwrap()),
        1 => Just(Segment::everyone()),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|s| Segment::all(s).unwrap()),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|s| Segment::any(s).unwrap()),
            inner.prop_map(|s| Segment::negate(s).unwrap()),
        ]
    })
}

fn contact(i: usize, p: &Person) -> Contact {
    let mut c = Contact::new(ContactId::new(format!("c{i}")).unwrap());
    c.email = p.email.map(str::to_owned);
    c.first_name = p.first_name.map(str::to_owned);
    for (k, v) in &p.fields {
        c.fields.insert((*k).to_owned(), v.clone());
    }
    c.tags = p.tags.iter().map(|t| (*t).to_owned()).collect();
    if p.messenger {
        c.addresses
            .push(Address::messenger("page", format!("psid{i}")).unwrap());
    }
    if p.email_address {
        c.addresses
            .push(Address::email(format!("u{i}@example.org")).unwrap());
    }
    c
}

async fn ids(query: &dyn SegmentQuery, segment: &Segment, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let p = query.page(segment, after.as_ref(), page).await.unwrap();
        assert!(p.contacts.len() <= page);
        out.extend(p.contacts.iter().map(|c| c.id.to_string()));
        match p.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// A SQL directory under test: where contacts go, where activity goes, what answers.
struct Sql {
    insert: Box<dyn Fn(Vec<Contact>) -> futures_util::future::BoxFuture<'static, ()>>,
    last: Arc<dyn LastInbound>,
    query: Arc<dyn SegmentQuery>,
}

async fn sqlite(clock: &ManualClock) -> Sql {
    let stores = SqliteStores::open_with(SqliteOptions::new(":memory:").clock(clock.shared()))
        .await
        .unwrap();
    let directory = stores.directory();
    let insert = directory.clone();
    Sql {
        insert: Box::new(move |contacts| {
            let insert = insert.clone();
            Box::pin(async move { insert.insert_many(&contacts).await.unwrap() })
        }),
        last: stores.last_inbound(),
        query: directory,
    }
}

async fn compare_with(sql: Sql, people: Vec<Person>, segments: Vec<Segment>, page: usize) {
    let clock = ManualClock::new(NOW);
    let last = Arc::new(MemoryLastInbound::new());
    let memory = MemoryDirectory::new().with_activity(last.clone(), clock.shared());
    let contacts: Vec<Contact> = people
        .iter()
        .enumerate()
        .map(|(i, p)| contact(i, p))
        .collect();
    (sql.insert)(contacts.clone()).await;
    for (c, p) in contacts.iter().zip(&people) {
        memory.insert(c.clone()).unwrap();
        if let (Some(hours), Some(a)) = (p.wrote, c.address_on(&Channel::Messenger)) {
            let at = NOW.saturating_sub(Duration::from_secs(hours * 3600));
            last.record(a, at).await.unwrap();
            sql.last.record(a, at).await.unwrap();
        }
    }
    for segment in &segments {
        let expected = ids(&memory, segment, page).await;
        let got = ids(sql.query.as_ref(), segment, page).await;
        assert_eq!(
            got,
            expected,
            "segment {}",
            serde_json::to_string(segment).unwrap()
        );
    }
}

async fn compare(people: Vec<Person>, segments: Vec<Segment>, page: usize) {
    let clock = ManualClock::new(NOW);
    compare_with(sqlite(&clock).await, people, segments, page).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use tidings::store::postgres::{PostgresOptions, PostgresStores};

    use super::*;

    /// The PostgreSQL stores of `db`, emptied: one database serves every case.
    pub(super) async fn stores(db: &support::TestDatabase) -> Sql {
        let stores = PostgresStores::open_with(
            PostgresOptions::new(&db.url).clock(ManualClock::new(NOW).shared()),
        )
        .await
        .unwrap();
        sqlx::query("TRUNCATE contacts, contact_addresses, contact_tags, last_inbound")
            .execute(stores.pool())
            .await
            .unwrap();
        let directory = stores.directory();
        let insert = directory.clone();
        Sql {
            insert: Box::new(move |contacts| {
                let insert = insert.clone();
                Box::pin(async move { insert.insert_many(&contacts).await.unwrap() })
            }),
            last: stores.last_inbound(),
            query: directory,
        }
    }

    #[test]
    fn postgres_segments_select_what_matches_selects() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Some(db) = runtime.block_on(support::TestDatabase::create("segments_prop")) else {
            return;
        };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 96,
            ..ProptestConfig::default()
        });
        let cases = (
            prop::collection::vec(person(), 0..25),
            prop::collection::vec(segment(), 1..10),
            1usize..7,
        );
        runner
            .run(&cases, |(people, segments, page)| {
                runtime.block_on(async {
                    compare_with(stores(&db).await, people, segments, page).await
                });
                Ok(())
            })
            .unwrap();
        drop(db);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_segments_select_what_matches_selects(
        people in prop::collection::vec(person(), 0..25),
        segments in prop::collection::vec(segment(), 1..10),
        page in 1usize..7,
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(compare(people, segments, page));
    }
}

/// Numbers compare by value and booleans are not numbers.
fn numbers_case() -> (Vec<Person>, Vec<Segment>) {
    let people = vec![
        Person {
            email: None,
            first_name: None,
            fields: vec![("score", json!(12)), ("flag", json!(true))],
            tags: vec![],
            messenger: false,
            email_address: false,
            wrote: None,
        },
        Person {
            email: None,
            first_name: None,
            fields: vec![("score", json!(12.0)), ("flag", json!(1))],
            tags: vec![],
            messenger: false,
            email_address: false,
            wrote: None,
        },
    ];
    let seg = |v: Value| Segment::from_json(&v.to_string()).unwrap();
    (
        people,
        vec![
            seg(json!({"field": {"name": "score", "op": "eq", "value": 12}})),
            seg(json!({"field": {"name": "flag", "op": "eq", "value": true}})),
            seg(json!({"field": {"name": "flag", "op": "eq", "value": 1}})),
            seg(json!({"field": {"name": "flag", "op": "ne", "value": true}})),
            seg(json!({"field": {"name": "score", "op": "gt", "value": 11.5}})),
        ],
    )
}

#[tokio::test]
async fn numbers_compare_by_value_and_booleans_are_not_numbers() {
    let (people, segments) = numbers_case();
    compare(people, segments, 1).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_numbers_compare_by_value_and_booleans_are_not_numbers() {
    let Some(db) = support::TestDatabase::create("segments_numbers").await else {
        return;
    };
    let (people, segments) = numbers_case();
    compare_with(postgres::stores(&db).await, people, segments, 1).await;
}
