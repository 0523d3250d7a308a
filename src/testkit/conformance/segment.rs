//! The [`SegmentQuery`] contract, activity segments included.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde_json::json;

use super::{messenger, ok, unique};
use crate::{
    activity::LastInbound,
    clock::Timestamp,
    contact::{Address, ContactId, NewContact},
    error::StoreError,
    identity::Directory,
    segment::{Cursor, Segment, SegmentQuery},
};

/// Runs the [`SegmentQuery`] contract; contacts are created through `dir`, which must be the
/// directory `query` reads.
///
/// A table of segments covering every operator (missing fields, nulls, arrays, `not`) is
/// resolved page by page and compared with [`Segment::matches`] over the same contacts, which
/// is what catches a SQL translation with three-valued-logic mistakes.
pub async fn segment_query(dir: Arc<dyn Directory>, query: Arc<dyn SegmentQuery>) {
    let tag = unique("cohort");
    let mut ours = Vec::new();
    for i in 0..24_i64 {
        let mut new = NewContact::new()
            .with_tag(tag.clone())
            .with_field("lesson", i);
        if i % 3 == 0 {
            new = new.with_address(messenger(&unique("psid-seg")));
        }
        if i % 4 == 0 {
            new = new.with_field("plan", if i % 8 == 0 { "pro" } else { "free" });
        }
        if i % 5 == 0 {
            new = new.with_field("courses", json!(["rust", format!("c{i}")]));
        }
        if i == 7 {
            new = new.with_field("plan", serde_json::Value::Null);
        }
        if i % 2 == 0 {
            new = new
                .with_email(format!("user{i}@example.org"))
                .with_name(format!("N{i:02}"), "Doe");
        }
        ours.push(ok("create for segment", dir.create(new).await));
    }
    let _outsider = ok(
        "create outsider",
        dir.create(NewContact::new().with_field("lesson", 99)).await,
    );

    let cases = [
        json!({"tag": tag}),
        json!({"all":[{"tag": tag},{"any":[{"has_address":"messenger"},{"field":{"name":"lesson","op":"gt","value":19}}]}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"plan","op":"ne","value":"pro"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"plan","op":"exists"}}]}),
        json!({"all":[{"tag": tag},{"not":{"field":{"name":"plan","op":"eq","value":"free"}}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"courses","op":"contains","value":"rust"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"email","op":"contains","value":"user1"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"first_name","op":"lt","value":"N10"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"lesson","op":"lt","value":3.5}}]}),
        json!({"all":[{"tag": tag},{"not":{"has_address":"messenger"}},{"field":{"name":"lesson","op":"eq","value":4}}]}),
    ];
    for case in cases {
        let segment = Segment::from_json(&case.to_string())
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        let expected: BTreeSet<ContactId> = ours
            .iter()
            .filter(|c| segment.matches(c))
            .map(|c| c.id.clone())
            .collect();
        let mut seen = BTreeSet::new();
        let mut after: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = ok("page", query.page(&segment, after.as_ref(), 4).await);
            pages += 1;
            assert!(
                page.contacts.len() <= 4,
                "page: holds at most `limit` contacts"
            );
            for c in &page.contacts {
                assert!(
                    seen.insert(c.id.clone()),
                    "page: returns each contact once ({}) for {case}",
                    c.id
                );
            }
            match page.next {
                Some(next) => {
                    assert!(
                        !page.contacts.is_empty(),
                        "page: a page with a next cursor is not empty"
                    );
                    after = Some(next);
                }
                None => break,
            }
            assert!(pages < 100, "page: paging never ends");
        }
        assert_eq!(
            seen, expected,
            "page: following the cursors yields exactly the matching contacts for {case}"
        );
        if let Some(n) = ok("count", query.count(&segment).await) {
            assert_eq!(
                n,
                expected.len() as u64,
                "count: a store that counts counts exactly the matching contacts for {case}"
            );
        }
    }

    let any = Segment::from_json(&json!({"tag": tag}).to_string())
        .unwrap_or_else(|e| panic!("conformance bug: {e}"));
    assert!(
        matches!(
            query
                .page(&any, Some(&Cursor::new("\u{1}not a cursor")), 4)
                .await,
            Err(StoreError::Invalid { .. })
        ),
        "page: a cursor the store did not issue is refused as invalid"
    );
    assert!(
        matches!(
            query.page(&any, None, 0).await,
            Err(StoreError::Invalid { .. })
        ),
        "page: a limit of 0 is refused as invalid"
    );
}

/// Runs the `active_within` part of the [`SegmentQuery`] contract: a store that evaluates
/// activity segments reads `last` (the host's [`LastInbound`] record) and evaluates them at
/// `now`, which the host fixes for the run (give the store a
/// [`ManualClock`](crate::clock::ManualClock) at `now`).
pub async fn segment_activity(
    dir: Arc<dyn Directory>,
    query: Arc<dyn SegmentQuery>,
    last: Arc<dyn LastInbound>,
    now: Timestamp,
) {
    let tag = unique("active");
    let hours_ago = |h: u64| now.saturating_sub(Duration::from_secs(h * 3600));
    // (hours since the last message on Messenger, or none; an e-mail address that wrote?)
    let people: [(Option<u64>, bool); 6] = [
        (Some(1), false),
        (Some(23), false),
        (Some(25), false),
        (None, true),
        (Some(100), true),
        (None, false),
    ];
    let mut everyone = BTreeSet::new();
    let mut recent = BTreeSet::new();
    let mut within_week = BTreeSet::new();
    let mut email_recent = BTreeSet::new();
    for (ago, email) in people {
        let psid = messenger(&unique("psid-active"));
        let mut new = NewContact::new()
            .with_tag(tag.clone())
            .with_address(psid.clone());
        let mail = Address::email(format!("{}@example.org", unique("active")))
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        if email {
            new = new.with_address(mail.clone());
        }
        let contact = ok("create for activity", dir.create(new).await);
        everyone.insert(contact.id.clone());
        if let Some(h) = ago {
            ok("record activity", last.record(&psid, hours_ago(h)).await);
            if h <= 24 {
                recent.insert(contact.id.clone());
            }
            if h <= 168 {
                within_week.insert(contact.id.clone());
            }
        }
        if email {
            ok(
                "record e-mail activity",
                last.record(&mail, hours_ago(2)).await,
            );
            email_recent.insert(contact.id.clone());
        }
    }
    let inactive: BTreeSet<ContactId> = everyone.difference(&recent).cloned().collect();
    let cases = [
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"messenger","hours":24}}]}),
            recent,
        ),
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"messenger","hours":168}}]}),
            within_week,
        ),
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"email","hours":24}}]}),
            email_recent,
        ),
        (
            json!({"all":[{"tag": tag},{"not":{"active_within":{"channel":"messenger","hours":24}}}]}),
            inactive,
        ),
    ];
    for (case, expected) in cases {
        let segment = Segment::from_json(&case.to_string())
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        let got: BTreeSet<ContactId> = ok("page", query.page(&segment, None, 100).await)
            .contacts
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(n) = ok("count", query.count(&segment).await) {
            assert_eq!(
                n,
                expected.len() as u64,
                "count: counts active_within segments as the pages read them ({case})"
            );
        }
        assert_eq!(
            got, expected,
            "active_within: a contact is active when its last inbound on the channel is at most N hours before now ({case})"
        );
    }
}
