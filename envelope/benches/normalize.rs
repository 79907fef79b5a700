//! Normalize throughput: a rich Richpanel JSON body, a ~10 KB email and a
//! ~1 MB email from the vendored corpus (testdata/corpus). Run: `cargo bench -p envelope`.
use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput};
use envelope::{NormalizeConfig, Source, normalize};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus/eml/");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{path}")).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The inputs: a name, the source and the body.
fn inputs() -> [(&'static str, Source, Vec<u8>); 3] {
    let richpanel = br#"{"ticket_id":"10234_acme_77","ticket_url":"https://app.richpanel.com/10234_acme_77",
        "trigger":"customer_replied","message_id":"c-88123","message":"Hi, where is my order 12345? It was due Monday.",
        "channel":"email","customer_email":"jane@example.com","customer_phone":"+1 555 123 4567",
        "customer_id":"cus_1","created_at":"2025-12-21T10:00:00.000Z","tags":["vip","shipping"],
        "assignee_id":"0f8c3c1e-1111-2222-3333-444455556666"}"#
        .to_vec();
    [
        ("richpanel_json", Source::Richpanel, richpanel),
        (
            "email_10kb",
            Source::Email,
            read("mikel-mail/error_emails__empty_group_lists.eml"),
        ),
        (
            "email_1mb",
            Source::Email,
            read("nodemailer-mailparser/large_text.eml"),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let cfg = NormalizeConfig::default();
    let now = Utc::now();
    let inputs = inputs();
    let mut group = c.benchmark_group("normalize");
    for (name, source, body) in &inputs {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| normalize(*source, black_box(body), &cfg, now).expect("normalizes"))
        });
    }
    group.finish();
}

/// `cargo bench` passes `--bench`: measure. `cargo test` runs this binary
/// with the test harness's arguments instead (`scripts/test` passes
/// `--include-ignored --skip ...`, which Criterion refuses): then check,
/// once each, that every input normalizes, as Criterion's test mode would.
fn main() {
    if std::env::args().any(|a| a == "--bench") {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
        return;
    }
    let cfg = NormalizeConfig::default();
    for (name, source, body) in inputs() {
        println!("Testing normalize/{name}");
        normalize(source, &body, &cfg, Utc::now()).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("Success");
    }
}
