//! The whole receive path with a valid signature over the fuzz input, so the fuzzer reaches
//! the parser, the Page check and de-duplication: never a panic, only typed errors.
#![no_main]

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use tidings::{
    messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
    store::memory::{MemoryLastInbound, MemorySeenEvents},
};

const SECRET: &str = "fuzz-app-secret";

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let pages = StaticPages::new([PageConfig::new("1", PageAccessToken::new("t"))]);
    let webhook = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("v"),
        Arc::new(pages),
        Arc::new(MemorySeenEvents::new()),
        Arc::new(MemoryLastInbound::new()),
    )
    .build();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(data);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = http::HeaderMap::new();
    headers.insert("x-hub-signature-256", sig.parse().unwrap());
    if let Ok(batch) = block_on(webhook.receive(&headers, data)) {
        let _ = block_on(webhook.commit_all(&batch.events));
    }
});
