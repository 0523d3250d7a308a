//! The `messenger_bot` example as a black box: a real process on SQLite, pointed at the fake
//! Graph API (the `fake_graph` example, a process of its own, whose record outlives the bot's
//! restarts), fed signed webhooks over HTTP, killed with SIGKILL or stopped with SIGTERM, and
//! started again: the conversation, the links, the flows and the campaign outcomes are all
//! still there, and nobody gets a message twice.

#[path = "support/bot.rs"]
mod bot;

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use bot::{Bot, PAGE, bot_binary, free_port, requests_at, start_bot_with, start_fake_graph};
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, SystemClock},
    testkit::user::FakeUser,
};

/// The text of a request the fake accepted: a text message's, or a button template's.
fn text_of(request: &Value) -> Option<&str> {
    let message = &request["message"];
    message["text"]
        .as_str()
        .or_else(|| message["attachment"]["payload"]["text"].as_str())
}

/// The buttons of a button template the fake accepted: (title, payload).
fn buttons_of(request: &Value) -> Vec<(String, String)> {
    request["message"]["attachment"]["payload"]["buttons"]
        .as_array()
        .map(|buttons| {
            buttons
                .iter()
                .map(|b| {
                    (
                        b["title"].as_str().unwrap_or_default().to_owned(),
                        b["payload"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_keeps_conversations_links_and_outcomes_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.db").to_str().unwrap().to_owned();
    let graph = start_fake_graph().await;
    let port = free_port();
    let now = SystemClock.now();
    let login_url = format!("http://127.0.0.1:{port}/login");
    let env = [("LOGIN_URL", login_url.as_str())];

    let bot = start_bot_with(&db, &graph.base, port, &env).await;
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
    assert_eq!(graph.requests().await.len(), 4);
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
    assert!(
        metrics.contains("tidings_webhook_events_received_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tidings_events_total{outcome="inbox"} 3"#),
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
    let who = {
        let (_, conv) = bot.api("GET", &format!("/conversations/{ann}"), None).await;
        conv["entries"][0]["text"].as_str().unwrap().to_owned()
    };
    let ann_psid = format!("90{}", who.trim_start_matches("hello "));
    let ann_user = FakeUser::new(PAGE, &ann_psid);

    // The built-in check-in flow asks with three answers, and Ann's answer picks the branch.
    let (status, started) = bot
        .api(
            "POST",
            "/flows/check-in/start",
            Some(json!({"contact_id": ann})),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let requests = graph.requests().await;
    let question = requests.last().unwrap();
    assert_eq!(question["recipient"], json!(ann_psid));
    assert_eq!(text_of(question), Some("How is the course going?"));
    let buttons = buttons_of(question);
    let titles: Vec<&str> = buttons.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Great", "Too fast", "I'm stuck"], "{question}");
    let great = buttons[0].1.clone();
    bot.webhook(&ann_user.postback("m_answer", "Great", &great, now))
        .await;
    let requests = graph.requests().await;
    assert_eq!(
        text_of(requests.last().unwrap()),
        Some("Wonderful! Lesson 4 is open."),
        "the branch of the answer"
    );
    for (flow, contact) in [("check-in", "nobody"), ("no-such-flow", ann.as_str())] {
        let (status, error) = bot
            .api(
                "POST",
                &format!("/flows/{flow}/start"),
                Some(json!({"contact_id": contact})),
            )
            .await;
        assert_eq!(status, 404, "{flow} for {contact}: {error}");
    }

    // A connect link for Ann, tapped on her phone (a new PSID): the phone is linked to her.
    let (status, link) = bot
        .api("POST", "/connect-links", Some(json!({"contact_id": ann})))
        .await;
    assert_eq!(status, 200, "{link}");
    let url = url::Url::parse(link["url"].as_str().unwrap()).unwrap();
    let link_ref = url
        .query_pairs()
        .find(|(k, _)| k == "ref")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let phone = FakeUser::new(PAGE, "905");
    bot.webhook(&phone.get_started_with_ref("m_phone_start", &link_ref, now))
        .await;
    let requests = graph.requests().await;
    let confirmed = requests.last().unwrap();
    assert_eq!(confirmed["recipient"], json!("905"));
    assert_eq!(
        text_of(confirmed),
        Some("Your Messenger is now connected to your account.")
    );

    // A campaign with "authorize on click": the link in it logs the recipient in, once.
    let lesson = format!("http://127.0.0.1:{port}/lessons/4");
    let campaign_login = json!({"id": "lesson-4", "segment": {"has_address": "messenger"},
        "text": format!("Lesson 4: {lesson}"), "channels": ["messenger"], "login_links": true});
    let (status, started) = bot.api("POST", "/campaigns", Some(campaign_login)).await;
    assert_eq!(status, 202, "{started}");
    let run = bot.campaign_done("lesson-4").await;
    assert_eq!(run["report"]["total"]["sent"], json!(3), "{run}");
    let requests = graph.requests().await;
    let to_ann = requests
        .iter()
        .rev()
        .find(|r| text_of(r).is_some_and(|t| t.starts_with("Lesson 4:")))
        .unwrap();
    let login_link = text_of(to_ann)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap()
        .to_owned();
    assert!(
        login_link.starts_with(&format!("{login_url}?t=")),
        "{login_link}"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A link preview fetching the link starts nothing: GET shows a button that posts.
    let page = no_redirects.get(&login_link).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<form method="post">"#)
    );
    let login = no_redirects.post(&login_link).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 303);
    assert_eq!(login.headers()["location"], lesson.as_str());
    let again = no_redirects.post(&login_link).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 403);
    assert!(again.text().await.unwrap().contains("already used"));
    let tampered = login_link.replace("t=", "t=x");
    let forged = no_redirects.post(&tampered).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let sent_before = graph.requests().await.len();

    // SIGKILL, then start again on the same file.
    drop(bot);
    let bot = start_bot_with(&db, &graph.base, port, &env).await;
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
    // The links survived: Ann writing again, and from her phone, is still Ann.
    bot.webhook(&ann_user.text("m_again", "me again", now))
        .await;
    bot.webhook(&phone.text("m_phone", "from my phone", now))
        .await;
    let (_, list) = bot.api("GET", "/conversations", None).await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 3, "{list}");
    let (_, conv) = bot.api("GET", &format!("/conversations/{ann}"), None).await;
    let texts: Vec<&str> = conv["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"me again") && texts.contains(&"from my phone"),
        "{texts:?}"
    );
    // The flow's answer survived: the same button tapped again moves nothing.
    bot.webhook(&ann_user.postback("m_answer_again", "Great", &great, now))
        .await;
    assert_eq!(graph.requests().await.len(), sent_before);
    // The outcomes survived: running the campaign again sends to nobody.
    assert_eq!(bot.api("POST", "/campaigns", Some(campaign)).await.0, 202);
    let run = bot.campaign_done("welcome").await;
    assert_eq!(run["report"]["this_run"]["sent"], json!(0), "{run}");
    assert_eq!(graph.requests().await.len(), sent_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_desk_open_stops_the_campaign_at_a_recorded_point_and_a_restart_resumes_it()
 {
    const PEOPLE: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.db").to_str().unwrap().to_owned();
    let graph = start_fake_graph().await;
    let port = free_port();
    let now = SystemClock.now();
    // Five sends a second: the campaign takes seconds, and the stop comes in the middle.
    let env = [("SEND_RATE", "5")];
    let mut bot = start_bot_with(&db, &graph.base, port, &env).await;
    for i in 0..PEOPLE {
        bot.webhook(&FakeUser::new(PAGE, format!("80{i:02}")).text(&format!("m_{i}"), "hi", now))
            .await;
    }
    // The desk is open: its live stream never ends on its own.
    let mut live = reqwest::Client::new()
        .get(format!("{}/api/events", bot.base))
        .bearer_auth(&bot.agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let campaign = json!({"id": "term", "segment": {"has_address": "messenger"},
        "text": "Lesson 2 is open", "channels": ["messenger"]});
    assert_eq!(
        bot.api("POST", "/campaigns", Some(campaign.clone()))
            .await
            .0,
        202
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        while graph.requests().await.len() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the campaign started sending");

    // Well before the 10 s drain limit: the stream was ended, not waited out.
    let status = bot.signal_and_wait("TERM", Duration::from_secs(7));
    assert!(status.success(), "{status:?}");
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(_)) = live.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream ended");
    let sent = graph.requests().await.len();
    assert!(
        (3..PEOPLE).contains(&sent),
        "stopped mid-campaign: {sent} sent"
    );

    // Started again: what was sent is recorded, and posting the campaign again sends the rest.
    let bot = start_bot_with(&db, &graph.base, port, &env).await;
    let (status, known) = bot.api("GET", "/campaigns/term", None).await;
    assert_eq!(status, 200, "{known}");
    assert_eq!(known["report"]["total"]["sent"], json!(sent), "{known}");
    assert_ne!(known["state"], "running", "{known}");
    assert_eq!(bot.api("POST", "/campaigns", Some(campaign)).await.0, 202);
    let run = bot.campaign_done("term").await;
    assert_eq!(
        run["report"]["this_run"]["sent"],
        json!(PEOPLE - sent),
        "{run}"
    );
    let requests = graph.requests().await;
    assert_eq!(requests.len(), PEOPLE);
    let recipients: HashSet<&str> = requests
        .iter()
        .filter_map(|r| r["recipient"].as_str())
        .collect();
    assert_eq!(
        recipients.len(),
        PEOPLE,
        "nobody twice, by the fake's own record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fake_graph_the_bot_runs_alone_on_the_demo_values_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(bot_binary());
    for name in [
        "PAGE_ACCESS_TOKEN",
        "APP_SECRET",
        "VERIFY_TOKEN",
        "PAGE_ID",
        "PAGE_USERNAME",
        "AGENT_TOKEN",
        "GRAPH_API_URL",
        "LOGIN_URL",
        "SMTP_HOST",
    ] {
        command.env_remove(name);
    }
    let mut child = command
        .arg("--fake-graph")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", dir.path().join("demo.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The demo values, as printed at start.
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        let mut values = std::collections::HashMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some((name, value)) = line.trim().split_once(":  ") {
                values.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            if values.contains_key("AGENT_TOKEN") {
                break;
            }
        }
        values
    });
    let printed = tokio::time::timeout(Duration::from_secs(30), printed)
        .await
        .expect("the bot printed its demo values")
        .unwrap();
    let mut bot = Bot {
        child,
        base: format!("http://127.0.0.1:{port}"),
        agent_token: printed["AGENT_TOKEN"].clone(),
        app_secret: printed["APP_SECRET"].clone(),
    };
    bot.up().await;
    assert_eq!(printed["PAGE_ID"], PAGE);
    let fake = printed["fake Graph API"].clone();

    bot.webhook(&FakeUser::new(PAGE, "700").text("m_1", "Is anyone there?", SystemClock.now()))
        .await;
    let (_, list) = bot.api("GET", "/conversations", None).await;
    let id = list["conversations"][0]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, sent) = bot
        .api(
            "POST",
            &format!("/conversations/{id}/reply"),
            Some(json!({"text": "Yes, hello!", "channels": ["messenger"]})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    // The fake inside the process took the reply.
    let requests = requests_at(&fake).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["recipient"], json!("700"));
    assert_eq!(text_of(&requests[0]), Some("Yes, hello!"));
    let status = bot.signal_and_wait("INT", Duration::from_secs(7));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bot_missing_its_configuration_names_every_problem_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bot_binary());
    for name in [
        "PAGE_ACCESS_TOKEN",
        "APP_SECRET",
        "VERIFY_TOKEN",
        "PAGE_ID",
        "AGENT_TOKEN",
        "SMTP_HOST",
    ] {
        command.env_remove(name);
    }
    let output = command
        .current_dir(dir.path())
        .env("PAGE_ID", "my-page")
        .env("LISTEN_ADDR", "nowhere")
        .env("LOGIN_URL", "ftp://school.example/login")
        .env("HUMAN_AGENT", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    for problem in [
        "PAGE_ACCESS_TOKEN is not set",
        "APP_SECRET is not set",
        "VERIFY_TOKEN is not set",
        "AGENT_TOKEN is not set",
        "PAGE_ID must be the Page's numeric id",
        "LISTEN_ADDR must be host:port",
        "LOGIN_URL is not an http(s) URL",
        "HUMAN_AGENT must be on or off",
    ] {
        assert!(said.contains(problem), "{problem:?} in {said}");
    }
    // Nothing started: no database file was made.
    assert!(!dir.path().join("tidings.db").exists());
}
