//! The webhook against a corpus of bodies shaped as Meta's webhook reference documents them
//! (`tests/fixtures/webhook/*.json`): every field of the Messenger webhook, Instagram-style
//! variants, other products and damaged events beside good ones. Each fixture holds the body
//! Meta posts and what it must become: the events (as `Inbound` serializes), the dropped
//! parts (page, kind, and whether the raw JSON was kept), the Page notices, unknown Pages and
//! the HTTP status.
//!
//! A fixture is written by hand from the reference; `TIDINGS_BLESS_FIXTURES=1 cargo test
//! --test webhook_fixtures` fills in the `expect` block from what the crate makes of the body,
//! for a new fixture, to be read and checked by eye before it is committed.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use http::{Method, Request};
use serde_json::{Value, json};
use tidings::{
    clock::{ManualClock, Timestamp},
    messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
    store::memory::{MemoryLastInbound, MemorySeenEvents},
};

const SECRET: &str = "fixture-app-secret";
/// The Page the fixtures' webhook serves; any other Page id in a body is unknown.
const PAGE: &str = "104812345678901";

fn webhook() -> Webhook {
    let pages = StaticPages::new([PageConfig::new(PAGE, PageAccessToken::new("token"))]);
    Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("verify"),
        Arc::new(pages),
        Arc::new(MemorySeenEvents::new()),
        Arc::new(MemoryLastInbound::new()),
    )
    .clock(ManualClock::new(Timestamp::from_millis(1_764_000_000_000)).shared())
    .build()
}

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the crate made of `body`, in the shape of a fixture's `expect` block.
async fn outcome(body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/webhook")
        .header("X-Hub-Signature-256", sign(&bytes))
        .body(Bytes::from(bytes))
        .unwrap();
    let handled = webhook().handle(&request).await;
    let status = handled.response.status().as_u16();
    let Some(batch) = handled.batch else {
        return json!({ "status": status });
    };
    let dropped: Vec<Value> = batch
        .dropped
        .iter()
        .map(|d| {
            assert!(!d.reason.is_empty(), "a dropped part says why: {d:?}");
            json!({ "page_id": d.page_id, "kind": d.kind, "raw": d.raw.is_some() })
        })
        .collect();
    let notices: Vec<Value> = batch
        .notices
        .iter()
        .map(|n| {
            let mut v = serde_json::to_value(n).unwrap();
            // The raw text is checked for presence only.
            if let Some(raw) = v.get_mut("raw") {
                *raw = json!(true);
            }
            v
        })
        .collect();
    json!({
        "status": status,
        "events": serde_json::to_value(&batch.events).unwrap(),
        "dropped": dropped,
        "notices": notices,
        "unknown_pages": batch.unknown_pages,
    })
}

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_fixture_becomes_what_meta_means_by_it() {
    let bless = std::env::var_os("TIDINGS_BLESS_FIXTURES").is_some();
    let files = fixtures();
    assert!(files.len() >= 30, "the corpus has {} fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut fixture: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            fixture["about"].is_string() && fixture["body"].is_object(),
            "{name}: a fixture has `about` and `body`"
        );
        let got = outcome(&fixture["body"]).await;
        if bless {
            fixture["expect"] = got;
            let mut out = serde_json::to_string_pretty(&fixture).unwrap();
            out.push('\n');
            std::fs::write(path, out).unwrap();
        } else if fixture["expect"] != got {
            failures.push(format!(
                "{name}: {}\n  expected {}\n  got      {}",
                fixture["about"].as_str().unwrap_or(""),
                fixture["expect"],
                got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The corpus covers every field of the Messenger webhook the reference lists, and each
/// fixture's events are all accounted for: every event of the body is an event, a dropped
/// part or a notice of the outcome (nothing silently lost).
#[tokio::test]
async fn the_corpus_covers_every_webhook_field_and_loses_no_event() {
    if std::env::var_os("TIDINGS_BLESS_FIXTURES").is_some() {
        return; // the other test is rewriting the files
    }
    let mut fields = std::collections::BTreeSet::new();
    for path in fixtures() {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = &fixture["body"];
        let mut posted = 0;
        for entry in body["entry"].as_array().into_iter().flatten() {
            for list in ["messaging", "standby", "changes"] {
                for event in entry[list].as_array().into_iter().flatten() {
                    posted += 1;
                    if let Some(object) = event.as_object() {
                        fields.extend(object.keys().cloned());
                    }
                }
            }
        }
        let got = outcome(body).await;
        if body["object"] != "page" || got["status"] != 200 {
            continue;
        }
        let count = |k: &str| got[k].as_array().map_or(0, Vec::len);
        let accounted = count("events") + count("dropped") + count("notices");
        let unknown_page = !got["unknown_pages"].as_array().unwrap().is_empty();
        assert!(
            accounted >= posted || unknown_page,
            "{name}: {posted} events posted, {accounted} accounted for: {got}"
        );
    }
    for field in [
        "message",
        "postback",
        "referral",
        "optin",
        "delivery",
        "read",
        "reaction",
        "message_edit",
        "pass_thread_control",
        "take_thread_control",
        "request_thread_control",
        "app_roles",
        "policy_enforcement",
        "account_linking",
        "game_play",
    ] {
        assert!(fields.contains(field), "no fixture has a {field:?} event");
    }
}
