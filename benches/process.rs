//! Flow transitions through the in-memory process store, and the memory an idle instance takes.
//!
//! `cargo bench --all-features --bench process`
//!
//! - `process/answer_transition`: one answer taking an instance from one question to the next:
//!   verify the payload's MAC, read the instance, commit the answer (a CAS write), render and
//!   send the next question (a transport that does nothing), store it as waiting (a second
//!   write). Each instance answers 8 questions (a typical flow asks a handful; the history each write copies grows with every step) and ends; the next one starts (the start is a
//!   transition too and is timed). Targets: at least 200,000 per second on one core.
//! - Memory per idle instance: a counting global allocator measures the bytes the memory store
//!   holds after 10,000 instances of the README flow started and wait at their first question
//!   (with its timeout, so each is also in the due index), divided by 10,000. Requested bytes,
//!   not counting the allocator's own overhead. Target: under 1 KiB. Printed before the timings.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    future::Future,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicIsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::{
    clock::{ManualClock, Timestamp},
    contact::{Address, Channel, ContactId, NewContact},
    identity::Directory,
    keys::{KeyRing, SigningKey},
    message::{Inbound, InboundKind, Message, Receipt},
    process::{FlowEngine, FlowId, Offer, ProcessEngine, flow::Flow},
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryProcessStore},
    transport::{Capabilities, DeliveryError, SendContext, Transport},
};

/// Counts the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

fn size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

// SAFETY: delegates to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(size(layout), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            isize::try_from(new_size).unwrap_or(isize::MAX) - size(layout),
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PAGE: &str = "104857600123456";

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A transport that sends nothing and remembers the first choice's payload of the last message.
struct Sink {
    first_payload: Mutex<String>,
}

#[async_trait]
impl Transport for Sink {
    fn channel(&self) -> &Channel {
        &Channel::Messenger
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
            .with_choices(13, Some(20))
            .with_buttons(3)
    }

    async fn send(
        &self,
        _: &Address,
        message: &Message,
        _: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        if let Some(choice) = message.choices().first() {
            let mut last = self
                .first_payload
                .lock()
                .map_err(|_| DeliveryError::other("poisoned"))?;
            last.clear();
            last.push_str(choice.payload());
        }
        Ok(Receipt::new(
            Channel::Messenger,
            Vec::new(),
            Timestamp::UNIX_EPOCH,
        ))
    }
}

fn keys() -> KeyRing {
    KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![5u8; 32])).expect("key"))
}

/// Questions in a row in the bench flow (a typical flow asks a handful).
const CHAIN: usize = 8;

/// `CHAIN` questions in a row, then the end.
fn chain() -> Flow {
    let mut builder = Flow::builder(FlowId::new("chain").expect("id"), 1);
    for i in 0..CHAIN {
        let next = if i + 1 == CHAIN {
            "end".to_owned()
        } else {
            format!("q{}", i + 1)
        };
        builder = builder.question(
            format!("q{i}"),
            "Step {{ fields.step | default('x') }}, {{ first_name }}: ready?",
            |q| q.option("Yes", next.clone()).option("No", next.clone()),
        );
    }
    builder.end("end").build()
}

/// The README's flow.
fn check_in() -> Flow {
    Flow::builder(FlowId::new("check-in").expect("id"), 1)
        .question(
            "ask",
            "Hi {{ first_name }}, how is the course going?",
            |q| {
                q.option("Great", "great")
                    .option("Too fast", "slow")
                    .option("I'm stuck", "stuck")
                    .timeout(Duration::from_secs(2 * 86_400), "nudge")
            },
        )
        .send("great", "Wonderful! Lesson 4 is open.", "done")
        .send("slow", "Take your time.", "pause")
        .wait("pause", Duration::from_secs(3 * 3600), "again")
        .question("again", "Better now?", |q| {
            q.option("Yes", "done").option("Not really", "stuck")
        })
        .handover("stuck", Some("A tutor will answer you here."), "done")
        .send("nudge", "We miss you!", "done")
        .end("done")
        .build()
}

struct Setup {
    engine: FlowEngine,
    sink: Arc<Sink>,
    directory: Arc<MemoryDirectory>,
}

fn setup() -> Setup {
    let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
    let directory = Arc::new(MemoryDirectory::new());
    let sink = Arc::new(Sink {
        first_payload: Mutex::new(String::new()),
    });
    let engine = FlowEngine::builder(
        Arc::new(MemoryProcessStore::new()),
        directory.clone(),
        keys(),
    )
    .transport(sink.clone())
    .clock(clock.shared())
    // Polled without a runtime (no timer); the sink never blocks.
    .send_timeout(None)
    .build();
    engine.define(chain()).expect("valid flow");
    engine.define(check_in()).expect("valid flow");
    Setup {
        engine,
        sink,
        directory,
    }
}

fn student(directory: &MemoryDirectory, psid: &str) -> ContactId {
    block_on(
        directory.create(
            NewContact::new()
                .with_name("Ann", "Lee")
                .with_address(Address::messenger(PAGE, psid).expect("address")),
        ),
    )
    .expect("contact")
    .id
}

fn memory_per_idle_instance() {
    const N: usize = 10_000;
    let s = setup();
    let contacts: Vec<ContactId> = (0..N)
        .map(|i| student(&s.directory, &format!("psid-{i}")))
        .collect();
    let flow = FlowId::new("check-in").expect("id");
    let before = ALLOCATED.load(Ordering::SeqCst);
    for contact in &contacts {
        block_on(s.engine.start(&flow, contact)).expect("started");
    }
    let after = ALLOCATED.load(Ordering::SeqCst);
    let per = (after - before) as f64 / N as f64;
    println!(
        "process/memory_per_idle_instance: {per:.0} bytes per instance waiting at a question \
         ({N} instances in MemoryProcessStore, requested bytes; target < 1024)"
    );
    drop(contacts);
}

fn bench_transitions(c: &mut Criterion) {
    memory_per_idle_instance();

    let s = setup();
    let contact = student(&s.directory, "psid-bench");
    let flow = FlowId::new("chain").expect("id");
    let from = Address::messenger(PAGE, "psid-bench").expect("address");
    let mut group = c.benchmark_group("process");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    // The payload of the question the bench instance waits at (empty: start a new instance).
    let mut payload = String::new();
    group.bench_function("answer_transition", |b| {
        // Wall time around the whole batch, as criterion's `iter_custom` expects.
        #[allow(clippy::disallowed_methods)]
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let answered = if payload.is_empty() {
                    Offer::NotConsumed
                } else {
                    let event = Inbound::new(
                        "bench",
                        from.clone(),
                        Timestamp::UNIX_EPOCH,
                        InboundKind::Answer {
                            message_id: None,
                            payload: std::mem::take(&mut payload),
                            text: None,
                        },
                    );
                    block_on(s.engine.offer(&contact, &event)).expect("offered")
                };
                if !matches!(answered, Offer::Consumed { .. }) {
                    block_on(s.engine.start(&flow, &contact)).expect("started");
                }
                let mut last = s.sink.first_payload.lock().expect("lock");
                payload = std::mem::take(&mut *last);
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_transitions);
criterion_main!(benches);
