//! The annotation clauses of the [`Inbox`] contract: annotations on inbox entries. The other
//! per-conversation stores the inbound side writes have their own files: `opt_ins`, `threads`.

use std::sync::Arc;

use super::{id, ok, unique};
use crate::{
    clock::Timestamp,
    contact::Channel,
    inbox::{Annotation, Change, DeliveryRecord, Inbox, Incoming, Outgoing},
    message::{Message, ReactionAction},
};

fn reaction(mid: &str, ms: i64, action: ReactionAction, emoji: &str, key: &str) -> Annotation {
    Annotation::new(
        Channel::Messenger,
        mid,
        Timestamp::from_millis(1_700_000_000_000 + ms),
        Change::Reaction {
            action,
            emoji: Some(emoji.to_owned()),
            name: None,
        },
    )
    .with_event_key(key)
}

fn edit(mid: &str, ms: i64, text: &str, count: u32, key: &str) -> Annotation {
    Annotation::new(
        Channel::Messenger,
        mid,
        Timestamp::from_millis(1_700_000_000_000 + ms),
        Change::Edit {
            text: text.to_owned(),
            edit_count: count,
        },
    )
    .with_event_key(key)
}

/// The [`Inbox::annotate`] clauses: on the target entry, kept when early, once per event key,
/// on outgoing entries by their sent ids, following a reassign and going with an erasure.
pub(super) async fn inbox_annotations(inbox: &Arc<dyn Inbox>) {
    let ann = id(&unique("annotated"));
    let bob = id(&unique("annotated-other"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let mid = |s: &str| format!("{s}-{}", ann.as_str());
    let key = |s: &str| format!("messenger:{s}-{}", ann.as_str());

    // A reaction that arrives before its target is kept.
    let early = ok(
        "annotate before the target",
        inbox
            .annotate(
                &ann,
                reaction(&mid("m1"), 20, ReactionAction::React, "❤", &key("r1")),
            )
            .await,
    );
    assert_eq!(early, None, "annotate: no target recorded yet gives None");
    let entry = ok(
        "record the target",
        inbox
            .record_incoming(
                &ann,
                t(10),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m1"))
                    .with_text("hello"),
            )
            .await,
    );
    let found = ok(
        "annotate with the target",
        inbox
            .annotate(&ann, edit(&mid("m1"), 30, "hello there", 1, &key("e1")))
            .await,
    );
    assert_eq!(
        found,
        Some(entry.clone()),
        "annotate: names the target entry"
    );
    // Redelivered: nothing more.
    ok(
        "annotate again",
        inbox
            .annotate(&ann, edit(&mid("m1"), 30, "hello there", 1, &key("e1")))
            .await,
    );
    ok(
        "second edit",
        inbox
            .annotate(&ann, edit(&mid("m1"), 40, "hello there!", 2, &key("e2")))
            .await,
    );
    // Bob's annotation of the same id is not on Ann's entry.
    ok(
        "annotate by another contact",
        inbox
            .annotate(
                &bob,
                reaction(&mid("m1"), 50, ReactionAction::React, "😡", &key("rb")),
            )
            .await,
    );
    let conversation = ok("conversation", inbox.conversation(&ann, 100).await);
    let shown = conversation
        .iter()
        .find(|e| e.id == entry)
        .unwrap_or_else(|| panic!("annotate: the target is listed"));
    assert_eq!(
        shown.annotations.len(),
        3,
        "annotate: the early reaction and two edits (once each, none of another contact's) show on the target: {shown:?}"
    );
    assert!(
        shown.annotations.windows(2).all(|w| w[0].at <= w[1].at),
        "annotations are in time order: {shown:?}"
    );
    assert_eq!(shown.reaction().and_then(|r| r.emoji), Some("❤"));
    assert_eq!(shown.current_text(), Some("hello there!"));
    assert_eq!(
        shown.edits().iter().map(|e| e.text).collect::<Vec<_>>(),
        ["hello there", "hello there!"],
        "edits keep their history"
    );

    // On an outgoing entry, by the id it was sent under; taking the reaction back.
    let text = Message::text("welcome").unwrap_or_else(|e| panic!("conformance bug: {e}"));
    let sent = ok(
        "record outgoing",
        inbox
            .record_outgoing(
                &ann,
                t(60),
                Outgoing::new(text)
                    .with_delivery(DeliveryRecord::sent(Channel::Messenger, vec![mid("out1")])),
            )
            .await,
    );
    let on_sent = ok(
        "react to a sent message",
        inbox
            .annotate(
                &ann,
                reaction(&mid("out1"), 70, ReactionAction::React, "👍", &key("r2")),
            )
            .await,
    );
    assert_eq!(
        on_sent,
        Some(sent.clone()),
        "annotate: outgoing entries are targets by their sent ids"
    );
    ok(
        "unreact",
        inbox
            .annotate(
                &ann,
                reaction(&mid("out1"), 80, ReactionAction::Unreact, "👍", &key("r3")),
            )
            .await,
    );
    let conversation = ok("conversation", inbox.conversation(&ann, 100).await);
    let out = conversation
        .iter()
        .find(|e| e.id == sent)
        .unwrap_or_else(|| panic!("the outgoing entry is listed"));
    assert_eq!(
        out.annotations.len(),
        2,
        "both reaction events are kept: {out:?}"
    );
    assert_eq!(out.reaction(), None, "a reaction taken back leaves none");

    // The conversation list shows the newest entry with its annotations too.
    let mut after = None;
    let summary = loop {
        let page = ok(
            "conversations",
            inbox.conversations(after.as_ref(), 50).await,
        );
        if let Some(s) = page.conversations.iter().find(|s| s.contact == ann) {
            break s.clone();
        }
        after = Some(
            page.next
                .unwrap_or_else(|| panic!("the conversation is listed")),
        );
    };
    assert_eq!(summary.last.id, sent);
    assert_eq!(
        summary.last.annotations.len(),
        2,
        "listing carries annotations"
    );

    // A reassign moves them; an erasure removes them.
    let merged = id(&unique("annotated-into"));
    ok("reassign", inbox.reassign(&ann, &merged).await);
    let moved = ok("conversation", inbox.conversation(&merged, 100).await);
    assert_eq!(
        moved.iter().map(|e| e.annotations.len()).sum::<usize>(),
        5,
        "reassign: annotations follow the conversation"
    );
    let again = ok(
        "annotate after reassign, same key",
        inbox
            .annotate(&merged, edit(&mid("m1"), 30, "hello there", 1, &key("e1")))
            .await,
    );
    assert_eq!(again, Some(entry.clone()));
    let moved = ok("conversation", inbox.conversation(&merged, 100).await);
    assert_eq!(
        moved.iter().map(|e| e.annotations.len()).sum::<usize>(),
        5,
        "reassign: a moved annotation's key still de-duplicates"
    );
    ok("forget", inbox.forget_contact(&merged).await);
    ok("forget other", inbox.forget_contact(&bob).await);
    assert!(
        ok("conversation", inbox.conversation(&merged, 100).await).is_empty(),
        "forget_contact: the conversation is gone"
    );
    // The keys of forgotten annotations go too: the same event recorded afresh counts.
    ok(
        "record after forget",
        inbox
            .record_incoming(
                &merged,
                t(10),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("after-forget"))
                    .with_text("hello again"),
            )
            .await,
    );
    let recorded = ok(
        "annotate after forget, same key",
        inbox
            .annotate(
                &merged,
                edit(&mid("after-forget"), 30, "hello again!", 1, &key("e1")),
            )
            .await,
    );
    assert!(recorded.is_some(), "annotate: names the target entry");
    let fresh = ok("conversation", inbox.conversation(&merged, 100).await);
    assert_eq!(
        fresh.iter().map(|e| e.annotations.len()).sum::<usize>(),
        1,
        "forget_contact: the keys of forgotten annotations go too: {fresh:?}"
    );
    ok("forget", inbox.forget_contact(&merged).await);
}
