//! The `messenger_bot` example as a process: started with the environment it reads, waited
//! for on `/healthz`, spoken to over HTTP (signed webhooks, the agent API), killed on drop.

#![allow(dead_code)] // each test binary uses part of it

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tidings::{messenger::AppSecret, testkit::user::FakeUser};

pub const PAGE: &str = "104812345678901";
pub const APP_SECRET: &str = "blackbox-app-secret";
pub const AGENT_TOKEN: &str = "blackbox-agent-token-0123456789";

/// The example's binary, built if this test runs on its own.
pub fn bot_binary() -> PathBuf {
    example_binary("messenger_bot")
}

/// An example's binary (`cargo test` builds them), built if this test runs on its own.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let binary = examples.join(name);
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--example",
                name,
                "--features",
                "axum,sqlite,postgres,testkit,email",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example failed");
    }
    binary
}

/// The `fake_graph` example as a process of its own (every recipient inside the window), so
/// that its record of what was sent outlives the bot's restarts. Killed on drop.
pub struct FakeGraphProcess {
    child: Child,
    pub base: String,
}

impl Drop for FakeGraphProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_fake_graph() -> FakeGraphProcess {
    let port = free_port();
    let child = Command::new(example_binary("fake_graph"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--page-id",
            PAGE,
            "--token",
            "page-token",
            "--open-window",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let fake = FakeGraphProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/_testkit/requests", fake.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return fake;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the fake Graph API did not come up");
}

impl FakeGraphProcess {
    /// Every Send API call the fake accepted, as `GET /_testkit/requests` lists them.
    pub async fn requests(&self) -> Vec<Value> {
        requests_at(&self.base).await
    }
}

/// What the fake Graph API at `base` lists as accepted.
pub async fn requests_at(base: &str) -> Vec<Value> {
    let listed: Value = reqwest::get(format!("{base}/_testkit/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["requests"].as_array().unwrap().clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Bot {
    pub child: Child,
    pub base: String,
    pub agent_token: String,
    pub app_secret: String,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_bot(db: &str, graph: &str, port: u16) -> Bot {
    start_bot_with(db, graph, port, &[]).await
}

/// [`start_bot`] with more variables.
pub async fn start_bot_with(db: &str, graph: &str, port: u16, env: &[(&str, &str)]) -> Bot {
    let mut command = Command::new(bot_binary());
    command
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
        // The test's own variables last: they may override the ones above.
        .envs(env.iter().copied());
    let child = command.stdout(Stdio::null()).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let bot = Bot {
        child,
        base,
        agent_token: AGENT_TOKEN.into(),
        app_secret: APP_SECRET.into(),
    };
    bot.up().await;
    bot
}

impl Bot {
    /// Waits for `/healthz`.
    pub async fn up(&self) {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the bot did not come up");
    }

    /// Sends `signal` (`TERM`, `INT`) and waits up to `within` for the bot to exit; its status.
    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
        const STEP: Duration = Duration::from_millis(20);
        for _ in 0..within.as_millis().div_ceil(STEP.as_millis()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(STEP);
        }
        panic!("the bot did not stop within {within:?} of SIG{signal}");
    }

    /// Posts a signed webhook batch; it must be accepted at once.
    pub async fn webhook(&self, body: &Value) {
        assert_eq!(self.post_webhook(body).await, 200);
    }

    /// Posts a signed webhook batch; the status.
    pub async fn post_webhook(&self, body: &Value) -> u16 {
        let (status, _) = FakeUser::post(
            &format!("{}/webhook", self.base),
            body,
            &AppSecret::new(self.app_secret.as_str()),
        )
        .await
        .unwrap();
        status
    }

    /// Posts a signed webhook batch as Meta does: again, a little later, for as long as the
    /// answer is 503 (another request is handling some of its events) or 500; how many times
    /// it was answered so before the 200.
    pub async fn deliver(&self, body: &Value) -> usize {
        for again in 0..200 {
            match self.post_webhook(body).await {
                200 => return again,
                500 | 503 => tokio::time::sleep(Duration::from_millis(25)).await,
                other => panic!("webhook answered {other}"),
            }
        }
        panic!("the webhook never accepted the batch");
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}/api{path}", self.base))
            .bearer_auth(&self.agent_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn campaign_done(&self, id: &str) -> Value {
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
