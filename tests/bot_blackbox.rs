//! The `messenger_bot` example as a black box: a real process on SQLite, pointed at the fake
//! Graph API, fed signed webhooks over HTTP, killed with SIGKILL and started again: the
//! conversation, the links and the campaign outcomes are all still there.

#[path = "support/bot.rs"]
mod bot;

use std::{net::SocketAddr, time::Duration};

use bot::{PAGE, free_port, start_bot};
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, SystemClock},
    testkit::{graph::FakeGraph, user::FakeUser},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_keeps_conversations_links_and_outcomes_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.db").to_str().unwrap().to_owned();
    let graph = FakeGraph::builder()
        .page(PAGE, "page-token")
        .enforce_window(false)
        .listen(SocketAddr::from(([127, 0, 0, 1], free_port())))
        .start()
        .await
        .unwrap();
    let port = free_port();
    let now = SystemClock.now();

    let bot = start_bot(&db, &graph.base_url(), port).await;
    // Unauthenticated agent requests are refused.
    let r = reqwest::get(format!("{}/api/conversations", bot.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The support desk page is served at the root.
    let page = reqwest::get(format!("{}/", bot.base)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    // Three people write; each is auto-registered and lands in the inbox.
    for i in 0..3 {
        bot.webhook(&FakeUser::new(PAGE, format!("90{i}")).text(
            &format!("m_{i}"),
            &format!("hello {i}"),
            now,
        ))
        .await;
    }
    let (_, list) = bot.api("GET", "/conversations", None).await;
    let conversations = list["conversations"].as_array().unwrap().clone();
    assert_eq!(conversations.len(), 3);
    let ann = conversations[0]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = bot
        .api(
            "POST",
            &format!("/conversations/{ann}/reply"),
            Some(json!({"text": "Welcome!", "channels": ["messenger"]})),
        )
        .await;
    assert_eq!(status, 200);
    let campaign = json!({"id": "welcome", "segment": {"has_address": "messenger"}, "text": "Lesson 1 is open", "channels": ["messenger"]});
    assert_eq!(
        bot.api("POST", "/campaigns", Some(campaign.clone()))
            .await
            .0,
        202
    );
    let run = bot.campaign_done("welcome").await;
    assert_eq!(run["report"]["total"]["sent"], json!(3), "{run}");
    let sent_before = graph.sent().len();
    assert_eq!(sent_before, 4);
    // /metrics counts the sends by channel and outcome: one reply and three campaign messages.
    let metrics = reqwest::get(format!("{}/metrics", bot.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"tidings_sends_total{channel="messenger",outcome="sent"} 4"#),
        "{metrics}"
    );
    // ... and the campaign's progress, as the agent API reported it.
    let progress = async {
        loop {
            let metrics = reqwest::get(format!("{}/metrics", bot.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metrics.contains(r#"tidings_campaign_recipients{campaign="welcome",count="sent"} 3"#)
                && metrics
                    .contains(r#"tidings_campaign_recipients{campaign="welcome",count="done"} 3"#)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), progress)
        .await
        .expect("the campaign's progress in /metrics");

    // SIGKILL, then start again on the same file.
    drop(bot);
    let bot = start_bot(&db, &graph.base_url(), port).await;
    let (_, list) = bot.api("GET", "/conversations", None).await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 3);
    // The campaign is still known after the restart, from the outbox.
    let (status, known) = bot.api("GET", "/campaigns/welcome", None).await;
    assert_eq!(status, 200, "{known}");
    assert_eq!(known["state"], "recorded", "{known}");
    assert_eq!(known["report"]["total"]["sent"], json!(3), "{known}");
    let (_, conv) = bot.api("GET", &format!("/conversations/{ann}"), None).await;
    let texts: Vec<&str> = conv["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(texts.contains(&"Welcome!"), "{texts:?}");
    assert!(
        texts.contains(&"Lesson 1 is open"),
        "the campaign's message is in the conversation: {texts:?}"
    );
    // The link survived: the same person writing again is the same contact.
    let who = conv["entries"][0]["text"].as_str().unwrap().to_owned();
    let psid = format!("90{}", who.trim_start_matches("hello "));
    bot.webhook(&FakeUser::new(PAGE, &psid).text("m_again", "me again", now))
        .await;
    let (_, list) = bot.api("GET", "/conversations", None).await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 3);
    // The outcomes survived: running the campaign again sends to nobody.
    assert_eq!(bot.api("POST", "/campaigns", Some(campaign)).await.0, 202);
    let run = bot.campaign_done("welcome").await;
    assert_eq!(run["report"]["this_run"]["sent"], json!(0), "{run}");
    assert_eq!(graph.sent().len(), sent_before);
    // The fake lists what it accepted for tests like this one.
    let listed: Value = reqwest::get(format!("{}/_testkit/requests", graph.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), sent_before);
}
