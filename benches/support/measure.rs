//! Rates and ratios measured in one run: every bench variant runs through criterion (for its
//! figures), then the variants take turns, so that a change of the machine's load falls on all
//! of them alike, and each figure is printed as a rate and as a share of its baselines.
//!
//! Shared by the benches that `#[path]` it in (benches/sqlite.rs, benches/workers.rs).

#![allow(dead_code)] // each bench uses part of it

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    sync::Mutex,
    time::Duration,
};

use criterion::Criterion;

/// Whether this is a `cargo bench` run (not `cargo test`'s single pass).
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Seconds per element of every interleaved round, by bench id.
static TALLY: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Notes that `elements` took `total` in bench `id`.
pub fn note(id: &str, elements: u64, total: Duration) {
    if elements == 0 {
        return;
    }
    TALLY
        .lock()
        .expect("tally")
        .entry(id.to_owned())
        .or_default()
        .push(total.as_secs_f64() / elements as f64);
}

/// Elements per second of bench `id`: the median over its interleaved rounds.
pub fn rate(id: &str) -> Option<f64> {
    rates(id).map(|(_, median, _)| median)
}

/// The slowest, median and fastest rate of bench `id` over its interleaved rounds.
pub fn rates(id: &str) -> Option<(f64, f64, f64)> {
    let tally = TALLY.lock().expect("tally");
    let mut per = tally.get(id)?.clone();
    per.sort_by(f64::total_cmp);
    let rate = |secs: f64| {
        if secs > 0.0 {
            1.0 / secs
        } else {
            f64::INFINITY
        }
    };
    Some((
        rate(per[per.len() - 1]),
        rate(per[per.len() / 2]),
        rate(per[0]),
    ))
}

/// One way of doing the measured work: `run(iters)` does it `iters` times and returns the time
/// of the timed part; an iteration holds `elements` (events, pages, messages, ...).
pub struct Variant<'a> {
    label: String,
    elements: u64,
    run: RefCell<Box<dyn FnMut(u64) -> Duration + 'a>>,
    /// Criterion's last call, (iters, time): sizes the interleaved slices.
    last: Cell<Option<(u64, Duration)>>,
}

impl<'a> Variant<'a> {
    pub fn new(
        label: impl Into<String>,
        elements: u64,
        run: impl FnMut(u64) -> Duration + 'a,
    ) -> Self {
        Variant {
            label: label.into(),
            elements,
            run: RefCell::new(Box::new(run)),
            last: Cell::new(None),
        }
    }

    /// Its label, as criterion shows it.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// How the interleaved measurement after criterion's runs a group's variants.
pub struct Interleave {
    /// How many turns each variant takes.
    pub rounds: usize,
    /// About how long each turn lasts.
    pub slice: Duration,
}

pub const INTERLEAVE: Interleave = Interleave {
    rounds: 8,
    slice: Duration::from_millis(300),
};

/// Runs every variant through criterion (for its figures), then measures the ratios: the
/// variants take turns, `rounds` times, each for about `slice`, so that a change of the
/// machine's load (other processes share its 2 cores) falls on all of them alike; the rate of
/// each is its median over the rounds. A variant the filter left out is skipped.
pub fn measure(
    c: &mut Criterion,
    name: &str,
    configure: impl FnOnce(&mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>),
    variants: &[Variant<'_>],
    interleave: &Interleave,
) {
    let mut group = c.benchmark_group(name);
    configure(&mut group);
    for variant in variants {
        group.bench_function(variant.label.as_str(), |b| {
            b.iter_custom(|iters| {
                let took = (variant.run.borrow_mut())(iters);
                variant.last.set(Some((iters, took)));
                took
            })
        });
    }
    group.finish();
    let ran: Vec<(&Variant<'_>, u64)> = variants
        .iter()
        .filter_map(|v| {
            let (iters, took) = v.last.get()?;
            let per_iter = took.as_secs_f64() / iters.max(1) as f64;
            let iters = if full() && per_iter > 0.0 {
                ((interleave.slice.as_secs_f64() / per_iter) as u64).max(1)
            } else {
                1
            };
            Some((v, iters))
        })
        .collect();
    let rounds = if full() { interleave.rounds } else { 1 };
    for round in 0..rounds {
        // A different one goes first each round.
        for k in 0..ran.len() {
            let (variant, iters) = ran[(round + k) % ran.len()];
            let took = (variant.run.borrow_mut())(iters);
            note(
                &format!("{name}/{}", variant.label),
                iters * variant.elements,
                took,
            );
        }
    }
}

/// What a subject is compared with, and the targets.
pub struct Compare<'a> {
    /// The bench group.
    pub group: &'a str,
    /// The variant measured.
    pub subject: &'a str,
    /// The variants it is compared with; the first is the one `min_ratio` is about.
    pub baselines: &'a [&'a str],
    /// What the elements are (`events`, `messages`, ...).
    pub unit: &'a str,
    /// The target rate, if any.
    pub min_rate: Option<f64>,
    /// The target share of the first baseline, if any.
    pub min_ratio: Option<f64>,
}

pub fn report(c: Compare<'_>) {
    let Some((slowest, subject, fastest)) = rates(&format!("{}/{}", c.group, c.subject)) else {
        return;
    };
    let mut line = format!(
        "ratio {}: {} {:.0} {}/s (rounds {slowest:.0}..{fastest:.0})",
        c.group, c.subject, subject, c.unit
    );
    // `cargo test` runs each bench once on a debug build: no verdicts on that.
    if let (true, Some(min)) = (full(), c.min_rate) {
        let verdict = if subject >= min { "met" } else { "MISSED" };
        line.push_str(&format!(" (target >= {min:.0}: {verdict})"));
    }
    for (i, baseline) in c.baselines.iter().enumerate() {
        let Some(base) = rate(&format!("{}/{baseline}", c.group)) else {
            continue;
        };
        let ratio = 100.0 * subject / base;
        line.push_str(&format!(
            " = {ratio:.1} % of {baseline} {base:.0} {}/s",
            c.unit
        ));
        if let (true, 0, Some(min)) = (full(), i, c.min_ratio) {
            let verdict = if ratio >= 100.0 * min {
                "met"
            } else {
                "MISSED"
            };
            line.push_str(&format!(" (target >= {:.0} %: {verdict})", 100.0 * min));
        }
    }
    println!("{line}");
}
