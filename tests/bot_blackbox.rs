//! The `messenger_bot` example as a black box: a real process on SQLite, pointed at the fake
//! Graph API, fed signed webhooks over HTTP, killed with SIGKILL and started again: the
//! conversation, the links and the campaign outcomes are all still there.

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use tidings::{
    clock::{Clock, SystemClock},
    messenger::AppSecret,
    testkit::{graph::FakeGraph, user::FakeUser},
};

const PAGE: &str = "104812345678901";
const APP_SECRET: &str = "blackbox-app-secret";
const AGENT_TOKEN: &str = "blackbox-agent-token-0123456789";

/// The example's binary, built if this test runs on its own.
fn bot_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let bot = examples.join("messenger_bot");
    if !bot.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--example",
                "messenger_bot",
                "--features",
                "axum,sqlite,testkit,email",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the bot example failed");
    }
    bot
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Bot {
    child: Child,
    base: String,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_bot(db: &str, graph: &str, port: u16) -> Bot {
    let child = Command::new(bot_binary())
        .env("PAGE_ACCESS_TOKEN", "page-token")
        .env("APP_SECRET", APP_SECRET)
        .env("VERIFY_TOKEN", "verify")
        .env("PAGE_ID", PAGE)
        .env("PAGE_USERNAME", "school")
        .env("AGENT_TOKEN", AGENT_TOKEN)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db)
        .env("GRAPH_API_URL", graph)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let bot = Bot { child, base };
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{}/healthz", bot.base)).await {
            if r.status().is_success() {
                return bot;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bot did not come up");
}

impl Bot {
    async fn webhook(&self, body: &Value) {
        let (status, _) = FakeUser::post(
            &format!("{}/webhook", self.base),
            body,
            &AppSecret::new(APP_SECRET),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}/api{path}", self.base))
            .bearer_auth(AGENT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn campaign_done(&self, id: &str) -> Value {
        for _ in 0..400 {
            let (_, run) = self.api("GET", &format!("/campaigns/{id}"), None).await;
            if run["state"] == "finished" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("campaign {id} did not finish");
    }
}

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
