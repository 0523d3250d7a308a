//! The [`OptIns`] contract.

use std::sync::Arc;

use super::{id, ok, unique};
use crate::{
    clock::Timestamp,
    contact::Channel,
    message::NotificationOptIn,
    optin::{OptInRecord, OptIns},
};

/// Runs the [`OptIns`] contract.
pub async fn opt_ins(store: Arc<dyn OptIns>) {
    let ann = id(&unique("opted"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let optin = |token: &str, topic: Option<&str>, status: Option<&str>| {
        let mut o = NotificationOptIn::new(token);
        o.topic = topic.map(str::to_owned);
        o.status = status.map(str::to_owned);
        o
    };
    let record = |c, ms, o| OptInRecord::new(c, Channel::Messenger, t(ms), o);
    assert!(ok(
        "record",
        store
            .record(record(ann.clone(), 10, optin("tok-a", Some("news"), None)))
            .await
    ));
    assert!(ok(
        "record other topic",
        store
            .record(record(ann.clone(), 10, optin("tok-b", None, None)))
            .await
    ));
    let stop = optin("tok-a", Some("news"), Some("STOP_NOTIFICATIONS"));
    assert!(
        ok(
            "record stop",
            store.record(record(ann.clone(), 30, stop.clone())).await
        ),
        "record: a later record of the topic replaces it"
    );
    assert!(
        !ok(
            "record older",
            store
                .record(record(
                    ann.clone(),
                    20,
                    optin("tok-old", Some("news"), None)
                ))
                .await
        ),
        "record: an older record does not replace a later one"
    );
    let list = ok("list", store.list(&ann).await);
    assert_eq!(list.len(), 2, "one record per (channel, topic): {list:?}");
    assert_eq!(list[0].topic(), "", "by channel then topic");
    assert_eq!(
        list[1].optin, stop,
        "the later record stays, token and status"
    );
    assert!(list[1].optin.is_stopped());
    assert_eq!(list[1].at, t(30));

    // A merge keeps the later record of a shared topic.
    let into = id(&unique("opted-into"));
    ok(
        "record into",
        store
            .record(record(into.clone(), 40, optin("tok-c", Some("news"), None)))
            .await,
    );
    assert_eq!(
        ok("reassign", store.reassign(&ann, &into).await),
        2,
        "reassign: how many moved"
    );
    assert!(
        ok("list from", store.list(&ann).await).is_empty(),
        "reassign: nothing stays behind"
    );
    let merged = ok("list into", store.list(&into).await);
    assert_eq!(merged.len(), 2);
    assert!(
        merged.iter().all(|r| r.contact == into),
        "reassign: records name the new contact"
    );
    let news = merged
        .iter()
        .find(|r| r.topic() == "news")
        .map(|r| r.optin.token.clone());
    assert_eq!(
        news.as_deref(),
        Some("tok-c"),
        "reassign: the later record of a topic stays"
    );

    assert_eq!(ok("forget", store.forget_contact(&into).await), 2);
    assert!(
        ok("list", store.list(&into).await).is_empty(),
        "forget_contact: nothing left"
    );
    assert_eq!(ok("forget again", store.forget_contact(&into).await), 0);
}
