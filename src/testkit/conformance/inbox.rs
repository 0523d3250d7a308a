//! The [`Inbox`] contract; its annotation clauses are in `conversation`.

use std::sync::Arc;

use super::{conversation, id, ok, unique};
use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    inbox::{
        DeliveryRecord, DeliveryStatus, EntryContent, Inbox, Incoming, Outgoing, StatusUpdate,
    },
    message::Message,
};

fn expect_invalid<T: std::fmt::Debug>(clause: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("{clause}: expected StoreError::Invalid, got {other:?}"),
    }
}

/// Runs the [`Inbox`] contract.
pub async fn inbox(inbox: Arc<dyn Inbox>) {
    let contact = id(&unique("inbox-contact"));
    let other = id(&unique("inbox-other"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let text = |s: &str| Message::text(s).unwrap_or_else(|e| panic!("conformance bug: {e}"));
    let mid = |s: &str| format!("{s}-{}", contact.as_str());

    // Out-of-order arrival still reads in transport-time order.
    let late = ok(
        "record incoming",
        inbox
            .record_incoming(
                &contact,
                t(3000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m2"))
                    .with_text("second"),
            )
            .await,
    );
    ok(
        "record incoming",
        inbox
            .record_incoming(
                &contact,
                t(1000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m1"))
                    .with_text("first"),
            )
            .await,
    );
    let again = ok(
        "record incoming twice",
        inbox
            .record_incoming(
                &contact,
                t(3000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m2"))
                    .with_text("second"),
            )
            .await,
    );
    assert_eq!(
        again, late,
        "record_incoming: a redelivered message returns the existing entry"
    );
    ok(
        "record for another contact",
        inbox
            .record_incoming(
                &other,
                t(1500),
                Incoming::new(Channel::Email).with_text("hi"),
            )
            .await,
    );

    let reply = Outgoing::new(text("reply"))
        .with_author("agent-7")
        .with_delivery(DeliveryRecord::sent(Channel::Messenger, vec![mid("o1")]))
        .with_delivery(DeliveryRecord::refused(Channel::Email, "no e-mail address"));
    ok(
        "record outgoing",
        inbox.record_outgoing(&contact, t(2000), reply).await,
    );

    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    let order: Vec<i64> = conv
        .iter()
        .map(|e| e.at.as_millis() - t(0).as_millis())
        .collect();
    assert_eq!(
        order,
        vec![1000, 2000, 3000],
        "conversation: ordered by transport time, duplicates dropped"
    );
    assert!(
        conv.iter().all(|e| e.contact == contact),
        "conversation: only the contact's entries"
    );
    match &conv[1].content {
        EntryContent::Outgoing(out) => {
            assert_eq!(
                out.author.as_deref(),
                Some("agent-7"),
                "record_outgoing: keeps the author"
            );
            assert_eq!(
                out.deliveries.len(),
                2,
                "record_outgoing: keeps every delivery record"
            );
        }
        other => panic!("conversation: expected the outgoing entry second, got {other:?}"),
    }
    let last_two = ok(
        "conversation with limit",
        inbox.conversation(&contact, 2).await,
    );
    assert_eq!(
        last_two.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![t(2000), t(3000)],
        "conversation: `limit` keeps the latest entries, oldest first"
    );

    // Statuses only move forward.
    let by_id = |status| StatusUpdate::Message {
        channel: Channel::Messenger,
        message_id: mid("o1"),
        status,
    };
    assert_eq!(
        ok(
            "delivered",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        1,
        "update_status: sent → delivered"
    );
    assert_eq!(
        ok(
            "delivered twice",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        0,
        "update_status: repeating a status moves nothing"
    );
    assert_eq!(
        ok(
            "read",
            inbox.update_status(&by_id(DeliveryStatus::Read)).await
        ),
        1,
        "update_status: delivered → read"
    );
    assert_eq!(
        ok(
            "late delivery",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        0,
        "update_status: never moves back"
    );
    let unknown = StatusUpdate::Message {
        channel: Channel::Messenger,
        message_id: unique("nope"),
        status: DeliveryStatus::Read,
    };
    assert_eq!(
        ok("unknown id", inbox.update_status(&unknown).await),
        0,
        "update_status: an unknown message id moves nothing"
    );
    let statuses = |conv: &[crate::inbox::Entry]| -> Vec<Vec<DeliveryStatus>> {
        conv.iter()
            .filter_map(|e| match &e.content {
                EntryContent::Outgoing(o) => Some(o.deliveries.iter().map(|d| d.status).collect()),
                _ => None,
            })
            .collect()
    };
    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    assert_eq!(
        statuses(&conv),
        vec![vec![DeliveryStatus::Read, DeliveryStatus::Refused]],
        "update_status: the refused record is untouched"
    );

    // Watermarks cover what was sent up to and including them, on their channel, for their
    // contact only.
    let sent_on = |channel: Channel, m: &str| {
        Outgoing::new(text(m)).with_delivery(DeliveryRecord::sent(channel, vec![mid(m)]))
    };
    for (ms, channel, m) in [
        (4000, Channel::Messenger, "o2"),
        (4500, Channel::Email, "o2-mail"),
        (5000, Channel::Messenger, "o2-at-watermark"),
        (6000, Channel::Messenger, "o3"),
    ] {
        ok(
            "record outgoing",
            inbox
                .record_outgoing(&contact, t(ms), sent_on(channel, m))
                .await,
        );
    }
    ok(
        "record outgoing for another contact",
        inbox
            .record_outgoing(&other, t(3000), sent_on(Channel::Messenger, "o-other"))
            .await,
    );
    let watermark = StatusUpdate::UpTo {
        contact: contact.clone(),
        channel: Channel::Messenger,
        watermark: t(5000),
        status: DeliveryStatus::Read,
    };
    assert_eq!(
        ok("watermark", inbox.update_status(&watermark).await),
        2,
        "update_status: a watermark moves what was sent before it and at it"
    );
    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    assert_eq!(
        statuses(&conv),
        vec![
            vec![DeliveryStatus::Read, DeliveryStatus::Refused],
            vec![DeliveryStatus::Read],
            vec![DeliveryStatus::Sent],
            vec![DeliveryStatus::Read],
            vec![DeliveryStatus::Sent]
        ],
        "update_status: other channels and entries after the watermark keep their status"
    );
    let other_conv = ok("conversation", inbox.conversation(&other, 100).await);
    assert_eq!(
        statuses(&other_conv),
        vec![vec![DeliveryStatus::Sent]],
        "update_status: a watermark never touches another contact's messages"
    );

    // Entries without a transport id are never merged, and keep recording order at equal times.
    for word in ["first", "second"] {
        ok(
            "record without id",
            inbox
                .record_incoming(
                    &other,
                    t(2500),
                    Incoming::new(Channel::Email).with_text(word),
                )
                .await,
        );
    }
    let texts: Vec<Option<String>> = ok("conversation", inbox.conversation(&other, 100).await)
        .into_iter()
        .filter_map(|e| match e.content {
            EntryContent::Incoming(i) if i.message_id.is_none() => Some(i.text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            Some("hi".to_owned()),
            Some("first".to_owned()),
            Some("second".to_owned())
        ],
        "record_incoming: entries without a message id are all kept, equal times in recording order"
    );

    // Reassigning moves a conversation and merges it in time order.
    let merged_into = id(&unique("inbox-merged"));
    ok(
        "record for the target",
        inbox
            .record_incoming(
                &merged_into,
                t(2600),
                Incoming::new(Channel::Email).with_text("target's own"),
            )
            .await,
    );
    let moved = ok("reassign", inbox.reassign(&other, &merged_into).await);
    assert_eq!(moved, 4, "reassign: returns how many entries moved");
    assert!(
        ok("conversation", inbox.conversation(&other, 100).await).is_empty(),
        "reassign: the old conversation is empty"
    );
    let times: Vec<i64> = ok("conversation", inbox.conversation(&merged_into, 100).await)
        .iter()
        .map(|e| e.at.as_millis() - t(0).as_millis())
        .collect();
    assert_eq!(
        times,
        vec![1500, 2500, 2500, 2600, 3000],
        "reassign: the merged conversation is in time order"
    );
    assert_eq!(
        ok(
            "reassign nothing",
            inbox.reassign(&other, &merged_into).await
        ),
        0,
        "reassign: nothing left to move"
    );

    // De-duplication is per channel: the same id on another channel is another message.
    let before = ok("conversation", inbox.conversation(&contact, 100).await).len();
    ok(
        "record same id on another channel",
        inbox
            .record_incoming(
                &contact,
                t(7000),
                Incoming::new(Channel::Email)
                    .with_message_id(mid("m2"))
                    .with_text("mail"),
            )
            .await,
    );
    assert_eq!(
        ok("conversation", inbox.conversation(&contact, 100).await).len(),
        before + 1,
        "record_incoming: de-duplication is per (channel, message id)"
    );
    inbox_event_keys(&inbox, &contact).await;
    conversation::inbox_annotations(&inbox).await;

    inbox_forget(&inbox).await;
    inbox_listing(&inbox).await;
}

/// The conversation list: newest activity first, each once across pages, unread counts and
/// read marks that only move forward, marks following a reassign and going with an erasure.
async fn inbox_listing(inbox: &Arc<dyn Inbox>) {
    use crate::inbox::{ConversationCursor, ConversationSummary};
    // Far in the future and apart from other runs, so these are the newest conversations.
    let mut salt = [0u8; 4];
    let _ = getrandom::fill(&mut salt);
    let base = 4_000_000_000_000 + i64::from(u32::from_le_bytes(salt) % 1_000_000) * 1000;
    let t = |ms: i64| Timestamp::from_millis(base + ms);
    let (a, b, c) = (
        id(&unique("list-a")),
        id(&unique("list-b")),
        id(&unique("list-c")),
    );
    let write = |contact: &ContactId, at: i64, text: &str| {
        let inbox = inbox.clone();
        let contact = contact.clone();
        let entry = Incoming::new(Channel::Messenger)
            .with_message_id(unique("list-mid"))
            .with_text(text);
        async move {
            ok(
                "record",
                inbox.record_incoming(&contact, t(at), entry).await,
            )
        }
    };
    write(&a, 10, "a1").await;
    write(&b, 20, "b1").await;
    write(&c, 15, "c1").await;
    write(&a, 30, "a2").await;
    // Newest activity first: a (30), b (20), c (15), read two per page.
    let mut seen: Vec<ConversationSummary> = Vec::new();
    let mut after: Option<ConversationCursor> = None;
    loop {
        let page = ok(
            "conversations",
            inbox.conversations(after.as_ref(), 2).await,
        );
        assert!(
            page.conversations.len() <= 2,
            "conversations: a page holds at most `limit`"
        );
        seen.extend(page.conversations);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        if seen
            .iter()
            .filter(|s| [&a, &b, &c].contains(&&s.contact))
            .count()
            == 3
        {
            break;
        }
    }
    let ours: Vec<&ConversationSummary> = seen
        .iter()
        .filter(|s| [&a, &b, &c].contains(&&s.contact))
        .collect();
    let order: Vec<&ContactId> = ours.iter().map(|s| &s.contact).collect();
    assert_eq!(
        order,
        vec![&a, &b, &c],
        "conversations: newest activity first, each conversation once"
    );
    assert_eq!(
        ours[0].last.at,
        t(30),
        "conversations: each comes with its newest entry"
    );
    assert_eq!(
        ours[0].unread, 2,
        "conversations: without a mark, every incoming entry is unread"
    );
    // A mark moves forward only.
    ok("mark_read", inbox.mark_read(&a, t(10)).await);
    ok("mark_read", inbox.mark_read(&a, t(5)).await);
    let unread = |contact: ContactId| {
        let inbox = inbox.clone();
        async move {
            let mut after: Option<ConversationCursor> = None;
            loop {
                let page = ok(
                    "conversations",
                    inbox.conversations(after.as_ref(), 50).await,
                );
                if let Some(s) = page.conversations.iter().find(|s| s.contact == contact) {
                    return s.unread;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => panic!("conversations: {contact} is not listed"),
                }
            }
        }
    };
    assert_eq!(
        unread(a.clone()).await,
        1,
        "mark_read: only entries later than the mark are unread, and marks never move back"
    );
    // Reassigning keeps the later mark.
    ok("mark_read", inbox.mark_read(&b, t(20)).await);
    ok("reassign", inbox.reassign(&b, &a).await);
    assert_eq!(
        unread(a.clone()).await,
        1,
        "reassign: the merged conversation keeps the later read mark"
    );
    // Erasure takes the mark: a new conversation of the same id starts all unread.
    ok("forget_contact", inbox.forget_contact(&a).await);
    write(&a, 40, "a3").await;
    assert_eq!(
        unread(a.clone()).await,
        1,
        "forget_contact: the read mark goes with the conversation"
    );
    expect_invalid(
        "conversations: a limit of 0",
        inbox.conversations(None, 0).await,
    );
    expect_invalid(
        "conversations: a foreign cursor",
        inbox
            .conversations(Some(&ConversationCursor::new("page=2")), 5)
            .await,
    );
}

/// The event-key clause of [`Inbox::record_incoming`]: an entry without a message id is
/// recorded once per (channel, event key).
async fn inbox_event_keys(inbox: &Arc<dyn Inbox>, contact: &ContactId) {
    let t = Timestamp::from_millis(1_700_000_009_000);
    let key = unique("messenger:postback");
    let postback = || {
        Incoming::new(Channel::Messenger)
            .with_choice("START")
            .with_event_key(key.as_str())
    };
    let before = ok("conversation", inbox.conversation(contact, 1000).await).len();
    let first = ok(
        "record keyed",
        inbox.record_incoming(contact, t, postback()).await,
    );
    let again = ok(
        "record keyed again",
        inbox.record_incoming(contact, t, postback()).await,
    );
    assert_eq!(
        again, first,
        "record_incoming: an event recorded again by its key returns the existing entry"
    );
    ok(
        "record keyed on another channel",
        inbox
            .record_incoming(
                contact,
                t,
                Incoming::new(Channel::Email)
                    .with_text("same key, other channel")
                    .with_event_key(key.as_str()),
            )
            .await,
    );
    let entries = ok("conversation", inbox.conversation(contact, 1000).await);
    assert_eq!(
        entries.len(),
        before + 2,
        "record_incoming: de-duplication is per (channel, event key)"
    );
    let kept = entries
        .iter()
        .find(|e| e.id == first)
        .unwrap_or_else(|| panic!("record_incoming: the keyed entry is listed"));
    assert!(
        matches!(&kept.content, EntryContent::Incoming(i) if i.event_key.as_deref() == Some(key.as_str()) && i.message_id.is_none()),
        "record_incoming: the entry keeps its event key and no message id: {kept:?}"
    );
}

/// The [`Inbox::forget_contact`] clause.
async fn inbox_forget(inbox: &Arc<dyn Inbox>) {
    let gone = id(&unique("inbox-forget"));
    let kept = id(&unique("inbox-keep"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let mid = |s: &str, c: &ContactId| format!("{s}-{}", c.as_str());
    let text = |s: &str| Message::text(s).unwrap_or_else(|e| panic!("conformance bug: {e}"));
    for c in [&gone, &kept] {
        ok(
            "record incoming",
            inbox
                .record_incoming(
                    c,
                    t(1000),
                    Incoming::new(Channel::Messenger)
                        .with_message_id(mid("in", c))
                        .with_text("my phone number is 555"),
                )
                .await,
        );
        ok(
            "record incoming without id",
            inbox
                .record_incoming(c, t(1500), Incoming::new(Channel::Email).with_text("hi"))
                .await,
        );
        ok(
            "record outgoing",
            inbox
                .record_outgoing(
                    c,
                    t(2000),
                    Outgoing::new(text("reply"))
                        .with_author("agent-7")
                        .with_delivery(DeliveryRecord::sent(
                            Channel::Messenger,
                            vec![mid("out", c)],
                        ))
                        .with_delivery(DeliveryRecord::failed(Channel::Email, "bounced")),
                )
                .await,
        );
    }
    let kept_before = ok("conversation", inbox.conversation(&kept, 100).await);
    assert_eq!(
        ok("forget_contact", inbox.forget_contact(&gone).await),
        3,
        "forget_contact: returns how many entries went"
    );
    assert!(
        ok("conversation", inbox.conversation(&gone, 100).await).is_empty(),
        "forget_contact: the conversation is empty"
    );
    assert_eq!(
        ok(
            "status by a forgotten message id",
            inbox
                .update_status(&StatusUpdate::Message {
                    channel: Channel::Messenger,
                    message_id: mid("out", &gone),
                    status: DeliveryStatus::Read,
                })
                .await
        ),
        0,
        "forget_contact: a status update naming a forgotten message id moves nothing"
    );
    assert_eq!(
        ok(
            "watermark for the forgotten contact",
            inbox
                .update_status(&StatusUpdate::UpTo {
                    contact: gone.clone(),
                    channel: Channel::Messenger,
                    watermark: t(10_000),
                    status: DeliveryStatus::Read,
                })
                .await
        ),
        0,
        "forget_contact: a watermark for the forgotten contact moves nothing"
    );
    assert_eq!(
        ok("conversation", inbox.conversation(&kept, 100).await),
        kept_before,
        "forget_contact: other conversations are untouched"
    );
    assert_eq!(
        ok("forget again", inbox.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            inbox.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without entries gives 0"
    );
    // The de-duplication record went too: a redelivery is recorded afresh.
    ok(
        "record a forgotten message again",
        inbox
            .record_incoming(
                &gone,
                t(3000),
                Incoming::new(Channel::Messenger).with_message_id(mid("in", &gone)),
            )
            .await,
    );
    let again = ok("conversation", inbox.conversation(&gone, 100).await);
    assert_eq!(
        again.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![t(3000)],
        "forget_contact: a forgotten incoming message id is recorded as a new entry"
    );
    assert_eq!(
        ok("forget", inbox.forget_contact(&gone).await),
        1,
        "forget_contact: removes entries recorded after an earlier forget"
    );
}
