//! Token issue and verify: the cost of making an m.me link and of checking a ref.
//!
//! `cargo bench --bench token`

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::{
    clock::{ManualClock, Timestamp},
    keys::SigningKey,
    secrecy::SecretSlice,
    token::{Purpose, Tokens},
};

fn tokens() -> Tokens {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).expect("32-byte key"))
        .with_clock(clock.shared())
}

fn bench_tokens(c: &mut Criterion) {
    let tokens = tokens();
    let ttl = Duration::from_secs(900);
    let token = tokens
        .issue(&Purpose::CONNECT, "user-000000000000042", ttl)
        .expect("issue");

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue_connect", |b| {
        b.iter(|| {
            tokens.issue(
                black_box(&Purpose::CONNECT),
                black_box("user-000000000000042"),
                ttl,
            )
        })
    });
    group.bench_function("verify_connect", |b| {
        b.iter(|| tokens.verify(black_box(&token), black_box(&Purpose::CONNECT)))
    });
    let mut forged = token.clone().into_string().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    group.bench_function("refuse_tampered", |b| {
        b.iter(|| tokens.verify(black_box(&forged), black_box(&Purpose::CONNECT)))
    });
    group.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
