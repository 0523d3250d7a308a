//! The fake Graph API as a process of its own, for black-box tests of a bot across restarts.
//!
//! ```sh
//! cargo run --example fake_graph --features testkit -- --listen 127.0.0.1:4000 \
//!     --page-id 104812345678901 --token demo-page-token --open-window
//! # then point the bot at it: GRAPH_API_URL=http://127.0.0.1:4000
//! curl http://127.0.0.1:4000/_testkit/requests   # every Send API call it accepted
//! ```
//!
//! Options: `--listen ADDR` (default 127.0.0.1:4000), `--page-id ID` and `--token TOKEN` (the
//! Page it serves and the access token it accepts; default the bot's demo values),
//! `--app-secret SECRET` (require `appsecret_proof`), `--open-window` (every recipient counts as
//! inside Messenger's 24-hour window). It runs until interrupted.

use std::{error::Error, net::SocketAddr};

use tidings::{messenger::AppSecret, testkit::graph::FakeGraph};

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: fake_graph [--listen ADDR] [--page-id ID] [--token TOKEN] \
         [--app-secret SECRET] [--open-window]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 4000));
    let mut page_id = "104812345678901".to_owned();
    let mut token = "demo-page-token".to_owned();
    let mut app_secret = None;
    let mut open_window = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen");
                listen = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--listen: {v:?} is not host:port")));
            }
            "--page-id" => page_id = value("--page-id"),
            "--token" => token = value("--token"),
            "--app-secret" => app_secret = Some(AppSecret::new(value("--app-secret"))),
            "--open-window" => open_window = true,
            other => usage(&format!("unknown option {other:?}")),
        }
    }
    let mut builder = FakeGraph::builder()
        .page(&page_id, &token)
        .listen(listen)
        .enforce_window(!open_window);
    if let Some(secret) = app_secret {
        builder = builder.app_secret(secret);
    }
    let fake = builder.start().await?;
    println!("fake Graph API on {} (Page {page_id})", fake.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
