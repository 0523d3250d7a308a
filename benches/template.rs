//! Template rendering: one recipient's newsletter text.
//!
//! `cargo bench --bench template`. Target (issue 6): at least 1,000,000 renders/s per core for
//! a typical 300-character text with 3 variables.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tidings::{
    contact::{Contact, ContactId},
    template::{CampaignVars, Template},
};

const TEXT: &str = "Hi {{ first_name | default('friend') }}, lesson {{ fields.lesson }} of \
your course is open now. It walks through ownership and borrowing with three short \
exercises and a quiz at the end; most people finish it in about twenty minutes. \
Open it whenever suits you: {{ campaign.url }} - and if anything is unclear, just \
reply to this message and a teacher will answer you here.";

fn bench_render(c: &mut Criterion) {
    let template = Template::compile(TEXT).expect("template compiles");
    let campaign = CampaignVars::from_json(json!({"url": "https://school.example/l/4"}))
        .expect("campaign vars");
    let mut contact = Contact::new(ContactId::new("user-000000000000042").expect("id"));
    contact.first_name = Some("Ann".into());
    contact.last_name = Some("Lee".into());
    contact.fields.insert("lesson".into(), json!(4));
    contact.fields.insert("plan".into(), json!("pro"));
    let rendered = template.render(&contact, &campaign).expect("renders");
    assert!((280..=340).contains(&rendered.len()), "{}", rendered.len());

    let mut group = c.benchmark_group("template");
    group.throughput(Throughput::Elements(1));
    group.bench_function("render_300_chars_3_vars", |b| {
        b.iter(|| template.render(black_box(&contact), black_box(&campaign)))
    });
    group.bench_function("compile", |b| b.iter(|| Template::compile(black_box(TEXT))));
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
