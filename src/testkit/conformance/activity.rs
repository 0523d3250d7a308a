//! The [`LastInbound`] contract.

use std::sync::Arc;

use super::{messenger, ok, unique};
use crate::{activity::LastInbound, clock::Timestamp, contact::Address};

/// Runs the [`LastInbound`] contract.
pub async fn last_inbound(store: Arc<dyn LastInbound>) {
    let a = messenger(&unique("psid-last"));
    let b = messenger(&unique("psid-last"));
    let t = |s: i64| Timestamp::from_secs(1_700_000_000 + s);
    assert_eq!(
        ok("last unknown", store.last(&a).await),
        None,
        "last: an address never recorded has no time"
    );
    ok("record", store.record(&a, t(10)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(10)),
        "last: returns the recorded time"
    );
    ok("record earlier", store.record(&a, t(5)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(10)),
        "record: an earlier time never moves the last activity back"
    );
    ok("record later", store.record(&a, t(20)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(20)),
        "record: a later time moves it forward"
    );
    assert_eq!(
        ok("last other", store.last(&b).await),
        None,
        "record: addresses are independent"
    );
    ok(
        "record_many",
        store
            .record_many(&[(&a, t(15)), (&b, t(30)), (&b, t(25))])
            .await,
    );
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(20)),
        "record_many: keeps the later time like record"
    );
    assert_eq!(
        ok("last", store.last(&b).await),
        Some(t(30)),
        "record_many: records every pair"
    );
    let same_psid_other_page = Address::messenger("another-page", a.id())
        .unwrap_or_else(|e| panic!("conformance bug: {e}"));
    assert_eq!(
        ok("last other page", store.last(&same_psid_other_page).await),
        None,
        "record: the same PSID on another Page is another address"
    );

    last_inbound_forget(&store).await;
}

/// The [`LastInbound::forget`] clause.
async fn last_inbound_forget(store: &Arc<dyn LastInbound>) {
    let gone = messenger(&unique("psid-forget"));
    let kept = messenger(&unique("psid-keep"));
    let t = |s: i64| Timestamp::from_secs(1_700_000_000 + s);
    ok(
        "record_many",
        store.record_many(&[(&gone, t(100)), (&kept, t(50))]).await,
    );
    assert!(
        ok("forget", store.forget(&gone).await),
        "forget: reports that there was a record"
    );
    assert_eq!(
        ok("last forgotten", store.last(&gone).await),
        None,
        "forget: the address has no time any more"
    );
    assert_eq!(
        ok("last kept", store.last(&kept).await),
        Some(t(50)),
        "forget: other addresses are untouched"
    );
    assert!(
        !ok("forget again", store.forget(&gone).await),
        "forget: forgetting again reports no record"
    );
    assert!(
        !ok(
            "forget unknown",
            store.forget(&messenger(&unique("nobody"))).await
        ),
        "forget: an address never recorded reports no record"
    );
    ok("record after forget", store.record(&gone, t(10)).await);
    assert_eq!(
        ok("last", store.last(&gone).await),
        Some(t(10)),
        "forget: nothing of the old time is left (an earlier time after forget is kept)"
    );
}
