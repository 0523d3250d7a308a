//! The [`ThreadOwners`] contract.

use std::sync::Arc;

use super::{messenger, ok, unique};
use crate::{
    clock::Timestamp,
    threads::{ThreadOwner, ThreadOwners, ThreadState},
};

/// Runs the [`ThreadOwners`] contract.
pub async fn thread_owners(store: Arc<dyn ThreadOwners>) {
    let ann = messenger(&unique("thread"));
    let bob = messenger(&unique("thread-other"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let inbox = || ThreadOwner::Other {
        app_id: Some("263902037430900".to_owned()),
    };
    assert_eq!(ok("get unknown", store.get(&ann).await), None);
    assert!(ok("set", store.set(&ann, inbox(), t(10)).await));
    assert_eq!(
        ok("get", store.get(&ann).await),
        Some(ThreadState::new(inbox(), t(10)))
    );
    assert!(ok(
        "set later",
        store.set(&ann, ThreadOwner::This, t(20)).await
    ));
    assert!(
        !ok("set earlier", store.set(&ann, inbox(), t(15)).await),
        "set: an earlier event does not move ownership back"
    );
    let now = ok("get", store.get(&ann).await);
    assert!(now.as_ref().is_some_and(ThreadState::is_ours), "{now:?}");
    ok("set other address", store.set(&bob, inbox(), t(5)).await);
    assert!(ok("forget", store.forget(&ann).await));
    assert_eq!(ok("get forgotten", store.get(&ann).await), None);
    assert!(!ok("forget again", store.forget(&ann).await));
    assert!(
        ok("get kept", store.get(&bob).await).is_some(),
        "forget: other addresses are untouched"
    );
    ok("forget other", store.forget(&bob).await);
}
