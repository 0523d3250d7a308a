//! The [`Directory`] contract.

use std::sync::Arc;

use serde_json::json;

use super::{expect_conflict, expect_not_found, id, messenger, ok, race, unique, winners};
use crate::{
    contact::{Address, NewContact},
    identity::Directory,
};

/// Runs the [`Directory`] contract.
pub async fn directory(dir: Arc<dyn Directory>) {
    let a = messenger(&unique("psid-a"));
    let b = messenger(&unique("psid-b"));
    let c = messenger(&unique("psid-c"));

    // create links the addresses and get / find_by_address return the contact.
    let ann = ok(
        "create",
        dir.create(
            NewContact::new()
                .with_email("ann@example.org")
                .with_name("Ann", "Lee")
                .with_address(a.clone()),
        )
        .await,
    );
    assert_eq!(
        ann.addresses,
        vec![a.clone()],
        "create: the new contact lists its address"
    );
    assert_eq!(
        ann.email.as_deref(),
        Some("ann@example.org"),
        "create: keeps the e-mail"
    );
    let got = ok("get", dir.get(&ann.id).await);
    assert_eq!(got.as_ref(), Some(&ann), "get: returns the created contact");
    let found = ok("find_by_address", dir.find_by_address(&a).await);
    assert_eq!(
        found.map(|c| c.id),
        Some(ann.id.clone()),
        "find_by_address: finds the owner"
    );
    assert_eq!(
        ok("get unknown", dir.get(&id(&unique("nobody"))).await),
        None,
        "get: unknown id is None"
    );
    assert!(
        ok(
            "find unknown",
            dir.find_by_address(&messenger(&unique("nobody"))).await
        )
        .is_none(),
        "find_by_address: unlinked address is None"
    );

    // create with a linked address conflicts and creates nothing.
    expect_conflict(
        "create with an address linked to another contact",
        dir.create(
            NewContact::new()
                .with_address(a.clone())
                .with_address(b.clone()),
        )
        .await,
    );
    assert!(
        ok("find after refused create", dir.find_by_address(&b).await).is_none(),
        "create: a refused create links none of its addresses"
    );

    // link is idempotent for the owner and conflicts for anyone else.
    ok("link", dir.link(&ann.id, &b).await);
    ok(
        "link again to the same contact",
        dir.link(&ann.id, &b).await,
    );
    let ann_now = ok("get after link", dir.get(&ann.id).await)
        .unwrap_or_else(|| panic!("get after link: contact vanished"));
    assert_eq!(
        ann_now.addresses.iter().filter(|x| **x == b).count(),
        1,
        "link: linking twice lists the address once"
    );
    let bob = ok(
        "create second",
        dir.create(
            NewContact::new()
                .with_email("bob@example.org")
                .with_address(c.clone()),
        )
        .await,
    );
    assert_ne!(bob.id, ann.id, "create: assigns distinct ids");
    expect_conflict(
        "link an address owned by another contact",
        dir.link(&bob.id, &b).await,
    );
    expect_not_found(
        "link to a missing contact",
        dir.link(&id(&unique("ghost")), &messenger(&unique("x")))
            .await,
    );

    // unlink returns the owner once.
    assert_eq!(
        ok("unlink", dir.unlink(&b).await),
        Some(ann.id.clone()),
        "unlink: returns the owner"
    );
    assert_eq!(
        ok("unlink again", dir.unlink(&b).await),
        None,
        "unlink: a second unlink finds nothing"
    );
    assert!(
        ok("find after unlink", dir.find_by_address(&b).await).is_none(),
        "unlink: address is free"
    );
    let ann_now = ok("get after unlink", dir.get(&ann.id).await)
        .unwrap_or_else(|| panic!("contact vanished"));
    assert!(
        !ann_now.addresses.contains(&b),
        "unlink: the contact no longer lists the address"
    );
    ok(
        "link a freed address elsewhere",
        dir.link(&bob.id, &b).await,
    );

    // merge moves addresses, keeps the target's data, fills what it lacks.
    let tech = ok(
        "create technical contact",
        dir.create(
            NewContact::new()
                .with_email("fb.123@users.invalid")
                .with_name("Tech", "Contact")
                .with_field("source", "messenger")
                .with_address(messenger(&unique("psid-t"))),
        )
        .await,
    );
    let tech_address = tech.addresses[0].clone();
    let merged = ok("merge", dir.merge(&tech.id, &ann.id).await);
    assert_eq!(merged.id, ann.id, "merge: returns the target");
    assert_eq!(
        merged.email.as_deref(),
        Some("ann@example.org"),
        "merge: keeps the target's e-mail"
    );
    assert_eq!(
        merged.first_name.as_deref(),
        Some("Ann"),
        "merge: keeps the target's name"
    );
    assert_eq!(
        merged.fields.get("source"),
        Some(&json!("messenger")),
        "merge: fills missing fields"
    );
    assert!(
        merged.addresses.contains(&tech_address) && merged.addresses.contains(&a),
        "merge: moves addresses"
    );
    let owner = ok("find after merge", dir.find_by_address(&tech_address).await).map(|c| c.id);
    assert_eq!(
        owner,
        Some(ann.id.clone()),
        "merge: moved addresses resolve to the target"
    );
    let before = ok("get before a merge into itself", dir.get(&ann.id).await);
    expect_conflict(
        "merge a contact into itself",
        dir.merge(&ann.id, &ann.id).await,
    );
    assert_eq!(
        ok("get after a merge into itself", dir.get(&ann.id).await),
        before,
        "merge: merging a contact into itself changes nothing"
    );
    expect_not_found(
        "merge a missing contact",
        dir.merge(&id(&unique("ghost")), &ann.id).await,
    );
    expect_not_found(
        "merge into a missing contact",
        dir.merge(&ann.id, &id(&unique("ghost"))).await,
    );
    assert_eq!(
        ok("get after a merge into nobody", dir.get(&ann.id).await),
        before,
        "merge: a merge into a missing contact changes nothing"
    );

    // Racing creates for one new sender create one contact.
    let racer = messenger(&unique("psid-race"));
    let created = winners(
        "racing create",
        race(|_| {
            let (dir, racer) = (dir.clone(), racer.clone());
            async move { dir.create(NewContact::new().with_address(racer)).await }
        })
        .await,
    );
    assert_eq!(
        created, 1,
        "create: racing creates with one address create exactly one contact"
    );

    directory_forget(&dir).await;
}

/// The [`Directory::forget_contact`] clause: the contact and its addresses go, nobody else's.
async fn directory_forget(dir: &Arc<dyn Directory>) {
    let x1 = messenger(&unique("psid-forget"));
    let x2 = Address::email(format!("{}@example.org", unique("forget")))
        .unwrap_or_else(|e| panic!("conformance bug: invalid address: {e}"));
    let k = messenger(&unique("psid-keep"));
    let gone = ok(
        "create the contact to forget",
        dir.create(
            NewContact::new()
                .with_email("gone@example.org")
                .with_name("Gone", "Person")
                .with_field("plan", "pro")
                .with_tag(unique("forget-tag"))
                .with_address(x1.clone())
                .with_address(x2.clone()),
        )
        .await,
    );
    let kept = ok(
        "create the contact to keep",
        dir.create(
            NewContact::new()
                .with_email("kept@example.org")
                .with_address(k.clone()),
        )
        .await,
    );
    let stored = ok("get", dir.get(&gone.id).await);
    assert_eq!(
        ok("forget_contact", dir.forget_contact(&gone.id).await),
        stored,
        "forget_contact: returns the contact as it was, with its addresses"
    );
    assert_eq!(
        ok("get forgotten", dir.get(&gone.id).await),
        None,
        "forget_contact: get no longer finds the contact"
    );
    for address in [&x1, &x2] {
        assert!(
            ok("find forgotten", dir.find_by_address(address).await).is_none(),
            "forget_contact: no address of the contact finds anyone ({address})"
        );
    }
    assert_eq!(
        ok("get kept", dir.get(&kept.id).await),
        Some(kept.clone()),
        "forget_contact: other contacts are untouched"
    );
    assert_eq!(
        ok("find kept", dir.find_by_address(&k).await).map(|c| c.id),
        Some(kept.id.clone()),
        "forget_contact: other contacts keep their addresses"
    );
    assert_eq!(
        ok("forget again", dir.forget_contact(&gone.id).await),
        None,
        "forget_contact: forgetting again finds nothing (an erasure can be run again)"
    );
    assert_eq!(
        ok(
            "forget unknown",
            dir.forget_contact(&id(&unique("nobody"))).await
        ),
        None,
        "forget_contact: an unknown contact is None, not an error"
    );
    // The addresses are free: nothing of the link is left behind.
    ok(
        "link a forgotten address to another contact",
        dir.link(&kept.id, &x1).await,
    );
    let newcomer = ok(
        "create with a forgotten address",
        dir.create(NewContact::new().with_address(x2.clone())).await,
    );
    assert_ne!(
        newcomer.id, gone.id,
        "forget_contact: a forgotten contact's id is not assigned again (signed tokens name it)"
    );
    assert!(
        newcomer.email.is_none() && newcomer.tags.is_empty() && newcomer.fields.is_empty(),
        "forget_contact: a new contact inherits nothing of the forgotten one"
    );
}
