//! The testkit's fake Graph API and fake user, driven over real loopback HTTP.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    messenger::AppSecret,
    testkit::{
        graph::{FakeGraph, GraphFault},
        user::FakeUser,
    },
};

const PAGE_A: &str = "104812345678901";
const PAGE_B: &str = "204812345678902";
const TOKEN_A: &str = "token-page-a";
const TOKEN_B: &str = "token-page-b";
const PSID: &str = "6789012345678901";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn t0() -> Timestamp {
    Timestamp::from_millis(1_718_000_000_000)
}

/// A fake serving Pages A and B on a manual clock, where `PSID` wrote to Page A at `t0`.
async fn fake() -> (FakeGraph, ManualClock) {
    let clock = ManualClock::new(t0());
    let fake = FakeGraph::builder()
        .page(PAGE_A, TOKEN_A)
        .page(PAGE_B, TOKEN_B)
        .clock(clock.shared())
        .start()
        .await
        .unwrap();
    fake.user_wrote(PAGE_A, PSID, t0());
    (fake, clock)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn url(fake: &FakeGraph, node: &str, edge: &str, token: &str) -> String {
    format!(
        "{}/v25.0/{node}/{edge}?access_token={token}",
        fake.base_url()
    )
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap();
    (status, body)
}

/// Posts `body` to Page A's `me/messages` with Page A's token.
async fn send(fake: &FakeGraph, body: &Value) -> (u16, Value) {
    answer(
        client()
            .post(url(fake, "me", "messages", TOKEN_A))
            .json(body),
    )
    .await
}

fn text(text: &str) -> Value {
    json!({
        "recipient": { "id": PSID },
        "messaging_type": "RESPONSE",
        "message": { "text": text },
    })
}

fn tagged(tag: &str) -> Value {
    json!({
        "recipient": { "id": PSID },
        "messaging_type": "MESSAGE_TAG",
        "tag": tag,
        "message": { "text": "Your order shipped" },
    })
}

#[track_caller]
fn assert_graph_error(answer: &(u16, Value), status: u16, code: i64, subcode: Option<i64>) {
    let (got_status, body) = answer;
    let error = &body["error"];
    assert_eq!(*got_status, status, "{body}");
    assert_eq!(error["code"], json!(code), "{body}");
    assert_eq!(error["error_subcode"].as_i64(), subcode, "{body}");
    assert_eq!(error["type"], "OAuthException", "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn a_valid_text_send_answers_a_message_id_and_is_recorded() {
    let (fake, _) = fake().await;
    let body = text("Lesson 3 is open.");
    assert_eq!(
        send(&fake, &body).await,
        (200, json!({ "recipient_id": PSID, "message_id": "m_1" }))
    );
    // The Page id works in the path as well as `me`.
    let (status, second) = answer(
        client()
            .post(url(&fake, PAGE_A, "messages", TOKEN_A))
            .json(&body),
    )
    .await;
    assert_eq!((status, &second["message_id"]), (200, &json!("m_2")));

    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].page_id, PAGE_A);
    assert_eq!(sent[0].recipient, PSID);
    assert_eq!(sent[0].messaging_type.as_deref(), Some("RESPONSE"));
    assert_eq!(sent[0].tag, None);
    assert_eq!(sent[0].body, body);
    assert_eq!(sent[0].message_id.as_deref(), Some("m_1"));
    assert_eq!(sent[0].at, t0());
    assert_eq!(sent[0].text(), Some("Lesson 3 is open."));
    assert_eq!(fake.request_count(), 2);

    fake.clear();
    assert!(fake.sent().is_empty());
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn sender_actions_and_user_refs_answer_as_graph_does() {
    let (fake, _) = fake().await;
    let typing = json!({ "recipient": { "id": PSID }, "sender_action": "typing_on" });
    assert_eq!(
        send(&fake, &typing).await,
        (200, json!({ "recipient_id": PSID }))
    );
    let to_ref = json!({
        "recipient": { "user_ref": "checkbox-ref-1" },
        "messaging_type": "UPDATE",
        "message": { "text": "Thanks for opting in" },
    });
    assert_eq!(
        send(&fake, &to_ref).await,
        (200, json!({ "message_id": "m_1" }))
    );
    let sent = fake.sent();
    assert_eq!(sent[0].sender_action(), Some("typing_on"));
    assert_eq!(sent[0].message_id, None);
    assert_eq!(sent[1].recipient, "checkbox-ref-1");
}

#[tokio::test]
async fn missing_unknown_or_foreign_tokens_give_190() {
    let (fake, _) = fake().await;
    let body = text("hi");
    let no_token = format!("{}/v25.0/me/messages", fake.base_url());
    assert_graph_error(
        &answer(client().post(&no_token).json(&body)).await,
        400,
        190,
        None,
    );
    assert_graph_error(
        &answer(
            client()
                .post(url(&fake, "me", "messages", "nope"))
                .json(&body),
        )
        .await,
        400,
        190,
        None,
    );
    // Page A's token on Page B's path.
    assert_graph_error(
        &answer(
            client()
                .post(url(&fake, PAGE_B, "messages", TOKEN_A))
                .json(&body),
        )
        .await,
        400,
        190,
        None,
    );
    // A bearer header works in place of the query parameter.
    let (status, _) = answer(client().post(&no_token).bearer_auth(TOKEN_A).json(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn appsecret_proof_is_required_and_checked_when_an_app_secret_is_set() {
    let secret = "app-secret-for-proofs";
    let fake = FakeGraph::builder()
        .page(PAGE_A, TOKEN_A)
        .app_secret(AppSecret::new(secret))
        .enforce_window(false)
        .start()
        .await
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(TOKEN_A.as_bytes());
    let proof = hex::encode(mac.finalize().into_bytes());
    let body = text("hi");
    let base = url(&fake, "me", "messages", TOKEN_A);

    let right = answer(
        client()
            .post(format!("{base}&appsecret_proof={proof}"))
            .json(&body),
    )
    .await;
    assert_eq!(right.0, 200, "{}", right.1);

    let wrong_proof = format!(
        "{}{}",
        &proof[..63],
        if proof.ends_with('0') { '1' } else { '0' }
    );
    for url in [
        format!("{base}&appsecret_proof={wrong_proof}"),
        format!("{base}&appsecret_proof=0x{proof}"),
        base.clone(),
    ] {
        let refused = answer(client().post(url).json(&body)).await;
        assert_graph_error(&refused, 400, 100, None);
        assert_eq!(
            refused.1["error"]["message"],
            "Invalid appsecret_proof provided in the API argument"
        );
    }
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn text_is_limited_to_2000_characters() {
    let (fake, _) = fake().await;
    assert_eq!(send(&fake, &text(&"a".repeat(2000))).await.0, 200);
    // Characters, not bytes: 2000 two-byte characters pass.
    assert_eq!(send(&fake, &text(&"é".repeat(2000))).await.0, 200);
    assert_graph_error(&send(&fake, &text(&"a".repeat(2001))).await, 400, 100, None);
    assert_eq!(fake.sent().len(), 2);
}

#[tokio::test]
async fn empty_text_gives_2018034() {
    let (fake, _) = fake().await;
    let refused = send(&fake, &text("")).await;
    assert_graph_error(&refused, 400, 100, Some(2_018_034));
    assert_eq!(refused.1["error"]["message"], "Message cannot be empty");
}

#[tokio::test]
async fn quick_replies_are_limited_in_number_and_title() {
    let (fake, _) = fake().await;
    let with_replies = |replies: Vec<Value>| {
        let mut body = text("Pick one");
        body["message"]["quick_replies"] = Value::Array(replies);
        body
    };
    let reply = |title: &str| json!({ "content_type": "text", "title": title, "payload": "P" });
    assert_eq!(
        send(&fake, &with_replies(vec![reply("Yes"); 13])).await.0,
        200
    );
    assert_graph_error(
        &send(&fake, &with_replies(vec![reply("Yes"); 14])).await,
        400,
        100,
        None,
    );
    assert_eq!(
        send(&fake, &with_replies(vec![reply(&"t".repeat(20))]))
            .await
            .0,
        200
    );
    assert_graph_error(
        &send(&fake, &with_replies(vec![reply(&"t".repeat(21))])).await,
        400,
        100,
        None,
    );
}

#[tokio::test]
async fn button_templates_take_one_to_three_valid_buttons() {
    let (fake, _) = fake().await;
    let template = |buttons: Vec<Value>| {
        json!({
            "recipient": { "id": PSID },
            "messaging_type": "RESPONSE",
            "message": { "attachment": { "type": "template", "payload": {
                "template_type": "button",
                "text": "What next?",
                "buttons": buttons,
            }}},
        })
    };
    let postback = json!({ "type": "postback", "title": "Start", "payload": "L3_START" });
    let link = json!({ "type": "web_url", "title": "Open", "url": "https://example.org/l3" });
    assert_eq!(
        send(
            &fake,
            &template(vec![postback.clone(), link.clone(), postback.clone()])
        )
        .await
        .0,
        200
    );
    assert_graph_error(
        &send(&fake, &template(vec![postback.clone(); 4])).await,
        400,
        100,
        None,
    );
    assert_graph_error(&send(&fake, &template(vec![])).await, 400, 100, None);
    let relative = json!({ "type": "web_url", "title": "Open", "url": "/l3" });
    assert_graph_error(
        &send(&fake, &template(vec![relative])).await,
        400,
        100,
        None,
    );
    let long_title = json!({ "type": "postback", "title": "t".repeat(21), "payload": "P" });
    assert_graph_error(
        &send(&fake, &template(vec![long_title])).await,
        400,
        100,
        None,
    );
}

#[tokio::test]
async fn messaging_type_tag_and_sender_action_rules() {
    let (fake, _) = fake().await;
    assert_eq!(send(&fake, &tagged("ACCOUNT_UPDATE")).await.0, 200);
    // A retired tag.
    assert_graph_error(
        &send(&fake, &tagged("SHIPPING_UPDATE")).await,
        400,
        100,
        None,
    );
    // MESSAGE_TAG without a tag.
    let mut untagged = tagged("ACCOUNT_UPDATE");
    untagged.as_object_mut().unwrap().remove("tag");
    assert_graph_error(&send(&fake, &untagged).await, 400, 100, None);
    // A tag without MESSAGE_TAG.
    let mut stray_tag = text("hi");
    stray_tag["tag"] = json!("ACCOUNT_UPDATE");
    assert_graph_error(&send(&fake, &stray_tag).await, 400, 100, None);
    // A message needs a messaging type.
    let mut no_type = text("hi");
    no_type.as_object_mut().unwrap().remove("messaging_type");
    assert_graph_error(&send(&fake, &no_type).await, 400, 100, None);
    // A sender action goes alone.
    let mut both = text("hi");
    both["sender_action"] = json!("typing_on");
    assert_graph_error(&send(&fake, &both).await, 400, 100, None);
    // One recipient kind only.
    let mut two_recipients = text("hi");
    two_recipients["recipient"]["user_ref"] = json!("ref-1");
    assert_graph_error(&send(&fake, &two_recipients).await, 400, 100, None);
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn malformed_bodies_and_paths_get_graph_errors() {
    let (fake, _) = fake().await;
    let malformed = answer(
        client()
            .post(url(&fake, "me", "messages", TOKEN_A))
            .header("content-type", "application/json")
            .body("{\"recipient\":"),
    )
    .await;
    assert_graph_error(&malformed, 400, 100, None);
    assert_eq!(malformed.1["error"]["message"], "Invalid parameter");
    let array = answer(
        client()
            .post(url(&fake, "me", "messages", TOKEN_A))
            .json(&json!([1])),
    )
    .await;
    assert_graph_error(&array, 400, 100, None);

    let bad_version = format!(
        "{}/25.0/me/messages?access_token={TOKEN_A}",
        fake.base_url()
    );
    assert_graph_error(
        &answer(client().post(bad_version).json(&text("hi"))).await,
        400,
        2500,
        None,
    );
    let other_version = format!(
        "{}/v2.6/me/messages?access_token={TOKEN_A}",
        fake.base_url()
    );
    assert_eq!(
        answer(client().post(other_version).json(&text("hi")))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn known_users_only_refuses_strangers() {
    let fake = FakeGraph::builder()
        .page(PAGE_A, TOKEN_A)
        .enforce_window(false)
        .known_users_only(true)
        .start()
        .await
        .unwrap();
    assert_graph_error(&send(&fake, &text("hi")).await, 400, 100, Some(2_018_001));
    fake.user_wrote(PAGE_A, PSID, Timestamp::UNIX_EPOCH);
    assert_eq!(send(&fake, &text("hi")).await.0, 200);
}

#[tokio::test]
async fn the_messaging_window_follows_the_clock() {
    let (fake, clock) = fake().await;
    let outside = |answer: &(u16, Value)| {
        assert_graph_error(answer, 400, 10, Some(2_018_278));
        assert_eq!(
            answer.1["error"]["message"],
            "This message is sent outside of allowed window"
        );
    };

    clock.advance(23 * HOUR);
    assert_eq!(send(&fake, &text("inside")).await.0, 200);

    clock.set(t0().saturating_add(25 * HOUR));
    outside(&send(&fake, &text("too late")).await);
    let mut update = text("too late");
    update["messaging_type"] = json!("UPDATE");
    outside(&send(&fake, &update).await);
    let typing = json!({ "recipient": { "id": PSID }, "sender_action": "typing_on" });
    outside(&send(&fake, &typing).await);
    assert_eq!(send(&fake, &tagged("ACCOUNT_UPDATE")).await.0, 200);
    assert_eq!(send(&fake, &tagged("HUMAN_AGENT")).await.0, 200);

    clock.set(t0().saturating_add(6 * DAY));
    assert_eq!(send(&fake, &tagged("HUMAN_AGENT")).await.0, 200);
    clock.set(t0().saturating_add(8 * DAY));
    outside(&send(&fake, &tagged("HUMAN_AGENT")).await);
    assert_eq!(send(&fake, &tagged("POST_PURCHASE_UPDATE")).await.0, 200);

    // The user writes again: the window reopens.
    fake.user_wrote(PAGE_A, PSID, clock.now());
    assert_eq!(send(&fake, &text("welcome back")).await.0, 200);

    // A user never heard from is outside the window.
    let mut stranger = text("hello?");
    stranger["recipient"]["id"] = json!("999");
    outside(&send(&fake, &stranger).await);

    // The window is kept per Page.
    let on_b = answer(
        client()
            .post(url(&fake, PAGE_B, "messages", TOKEN_B))
            .json(&text("hi")),
    )
    .await;
    outside(&on_b);
}

#[tokio::test]
async fn fail_next_answers_the_fault_then_recovers() {
    let (fake, _) = fake().await;
    fake.fail_next(2, GraphFault::temporary());
    for _ in 0..2 {
        let failed = send(&fake, &text("hi")).await;
        assert_graph_error(&failed, 400, 1200, None);
        assert_eq!(
            failed.1["error"]["message"],
            GraphFault::temporary().message.as_str()
        );
    }
    assert_eq!(send(&fake, &text("hi")).await.0, 200);

    // Faults come before validation.
    fake.fail_next(1, GraphFault::unavailable_user());
    assert_graph_error(&send(&fake, &text("")).await, 400, 551, Some(1_545_041));
    fake.fail_next(1, GraphFault::server_error());
    assert_graph_error(&send(&fake, &text("hi")).await, 503, 2, None);

    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn fail_every_faults_each_kth_send_deterministically() {
    let (fake, _) = fake().await;
    fake.fail_every(3, GraphFault::rate_limited());
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let answer = send(&fake, &text("hi")).await;
        if answer.0 != 200 {
            assert_graph_error(&answer, 400, 613, None);
        }
        statuses.push(answer.0);
    }
    assert_eq!(statuses, [200, 200, 400, 200, 200, 400, 200]);

    fake.fail_every(1, GraphFault::new(429, 80006, Some(2_446_079), "BUC limit"));
    assert_graph_error(&send(&fake, &text("hi")).await, 429, 80006, Some(2_446_079));
    fake.fail_every(1, GraphFault::page_rate_limited());
    assert_graph_error(&send(&fake, &text("hi")).await, 400, 32, None);
    fake.fail_every(1, GraphFault::expired_token());
    assert_graph_error(&send(&fake, &text("hi")).await, 400, 190, Some(463));
    fake.fail_every(0, GraphFault::temporary());
    assert_eq!(send(&fake, &text("hi")).await.0, 200);
    assert_eq!(fake.sent().len(), 6);
}

#[tokio::test]
async fn latency_still_answers() {
    let (fake, _) = fake().await;
    fake.set_latency(Duration::from_millis(20));
    assert_eq!(send(&fake, &text("hi")).await.0, 200);
    fake.set_latency(Duration::ZERO);
    assert_eq!(send(&fake, &text("hi")).await.0, 200);
}

#[tokio::test]
async fn messenger_profile_round_trips_and_checks_greetings() {
    let (fake, _) = fake().await;
    let profile_url = url(&fake, "me", "messenger_profile", TOKEN_A);
    let set = json!({
        "get_started": { "payload": "GET_STARTED" },
        "greeting": [{ "locale": "default", "text": "Hi {{user_first_name}}!" }],
    });
    assert_eq!(
        answer(client().post(&profile_url).json(&set)).await,
        (200, json!({ "result": "success" }))
    );
    let more = json!({ "whitelisted_domains": ["https://example.org"] });
    assert_eq!(answer(client().post(&profile_url).json(&more)).await.0, 200);
    assert_eq!(
        fake.profile(PAGE_A),
        json!({
            "get_started": { "payload": "GET_STARTED" },
            "greeting": [{ "locale": "default", "text": "Hi {{user_first_name}}!" }],
            "whitelisted_domains": ["https://example.org"],
        })
    );
    assert_eq!(fake.profile(PAGE_B), json!({}));

    let get = format!("{profile_url}&fields=get_started,greeting,ice_breakers");
    assert_eq!(
        answer(client().get(&get)).await,
        (
            200,
            json!({ "data": [{
                "get_started": { "payload": "GET_STARTED" },
                "greeting": [{ "locale": "default", "text": "Hi {{user_first_name}}!" }],
            }]})
        )
    );

    let too_long = json!({ "greeting": [{ "locale": "default", "text": "g".repeat(161) }] });
    assert_graph_error(
        &answer(client().post(&profile_url).json(&too_long)).await,
        400,
        100,
        None,
    );
    let long_payload = json!({ "get_started": { "payload": "p".repeat(1001) } });
    assert_graph_error(
        &answer(client().post(&profile_url).json(&long_payload)).await,
        400,
        100,
        None,
    );

    let delete = json!({ "fields": ["greeting"] });
    assert_eq!(
        answer(client().delete(&profile_url).json(&delete)).await.0,
        200
    );
    assert!(fake.profile(PAGE_A).get("greeting").is_none());
    // Profile calls are not sends.
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn fake_user_signs_like_meta_and_batches_entries() {
    let tv1 = r#"{"object":"page","entry":[{"id":"104812345678901","time":1718000000123,"messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},"timestamp":1718000000001,"message":{"mid":"m_AbCdEf0123456789","text":"Hi, I need help with order 4411"}}]}]}"#;
    let secret = AppSecret::new("0123456789abcdef0123456789abcdef");
    assert_eq!(
        FakeUser::sign(tv1.as_bytes(), &secret),
        "sha256=e4e278057d6b7aa160f27e9702eb2f7f96d88209ae4bfa1c9f749d15cdd26a46"
    );

    let ann = FakeUser::new(PAGE_A, PSID);
    let bob = FakeUser::new(PAGE_B, "42");
    let at = t0();
    let batch = FakeUser::batch(vec![
        ann.text("m_1", "hi", at),
        bob.postback("m_2", "Start", "L3_START", at),
        ann.read(at),
    ]);
    assert_eq!(batch["object"], "page");
    let entries = batch["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["id"], PAGE_A);
    assert_eq!(entries[0]["messaging"][0]["message"]["text"], "hi");
    assert_eq!(entries[1]["id"], PAGE_B);
    assert_eq!(entries[1]["messaging"][0]["sender"]["id"], "42");
    assert_eq!(
        entries[2]["messaging"][0]["read"]["watermark"],
        json!(at.as_millis())
    );
}

#[tokio::test]
async fn fake_user_posts_compact_signed_json() {
    type Seen = Arc<Mutex<Option<(HeaderMap, Bytes)>>>;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let webhook = Router::new().route(
        "/webhook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            *record.lock().unwrap() = Some((headers, body));
            "EVENT_RECEIVED"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, webhook).await });

    let secret = AppSecret::new("0123456789abcdef0123456789abcdef");
    let body = FakeUser::new(PAGE_A, PSID).text("m_1", "Café ☕ / yes", t0());
    let answer = FakeUser::post(&format!("http://{addr}/webhook"), &body, &secret)
        .await
        .unwrap();
    assert_eq!(answer, (200, "EVENT_RECEIVED".to_owned()));

    let (headers, bytes) = seen.lock().unwrap().take().unwrap();
    assert_eq!(bytes, body.to_string().as_bytes());
    assert_eq!(
        headers["x-hub-signature-256"].to_str().unwrap(),
        FakeUser::sign(&bytes, &secret)
    );
    assert_eq!(headers["content-type"], "application/json");
    server.abort();
}

#[tokio::test]
async fn dropping_the_fake_stops_the_server() {
    let (fake, _) = fake().await;
    let url = url(&fake, "me", "messages", TOKEN_A);
    // One client throughout, so its pooled keep-alive connection is in play too.
    let client = client();
    let (status, _) = answer(client.post(&url).json(&text("hi"))).await;
    assert_eq!(status, 200);
    drop(fake);
    // The listener closes on the server's task; give it a bounded number of turns.
    let mut refused = None;
    for attempt in 0..100 {
        tokio::task::yield_now().await;
        match client.post(&url).json(&text("hi")).send().await {
            Err(e) if e.is_connect() => {
                refused = Some(attempt);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(
        refused.is_some(),
        "the fake kept accepting connections after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_wrote_in_opens_the_window_for_the_fake_and_for_the_crate_alike() {
    use tidings::{
        activity::LastInbound,
        contact::Address,
        message::Message,
        messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
        store::memory::MemoryLastInbound,
        transport::{DeliveryErrorKind, Intent, SendContext, Transport},
    };
    let clock = ManualClock::new(t0());
    let fake = FakeGraph::builder()
        .page(PAGE_A, TOKEN_A)
        .clock(clock.shared())
        .start()
        .await
        .unwrap();
    let last = Arc::new(MemoryLastInbound::new());
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE_A,
        PageAccessToken::new(TOKEN_A),
    )]));
    let messenger = MessengerTransport::builder(pages, last.clone())
        .base_url(fake.base_url())
        .clock(clock.shared())
        .build()
        .unwrap();
    let to = Address::messenger(PAGE_A, PSID).unwrap();
    let hello = Message::text("Hello").unwrap();
    let reply = SendContext::new(Intent::Reply);
    // The fake's side alone: the crate has no message on record, and refuses to send.
    fake.user_wrote(PAGE_A, PSID, t0());
    let refused = messenger.send(&to, &hello, &reply).await.unwrap_err();
    assert_eq!(refused.kind(), DeliveryErrorKind::WindowClosed);
    assert!(fake.sent().is_empty());
    // Both sides: the send goes out.
    fake.user_wrote_in(last.as_ref(), PAGE_A, PSID, t0())
        .await
        .unwrap();
    assert_eq!(last.last(&to).await.unwrap(), Some(t0()));
    messenger.send(&to, &hello, &reply).await.unwrap();
    assert_eq!(fake.sent().len(), 1);
}
