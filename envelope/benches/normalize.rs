//! Normalize throughput: a rich Richpanel JSON body, a ~10 KB email and a
//! ~1 MB email from the vendored corpus (testdata/corpus). Run: `cargo bench -p envelope`.
use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use envelope::{NormalizeConfig, Source, normalize};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus/eml/");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{path}")).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let cfg = NormalizeConfig::default();
    let now = Utc::now();
    let richpanel = br#"{"ticket_id":"10234_acme_77","ticket_url":"https://app.richpanel.com/10234_acme_77",
        "trigger":"customer_replied","message_id":"c-88123","message":"Hi, where is my order 12345? It was due Monday.",
        "channel":"email","customer_email":"jane@example.com","customer_phone":"+1 555 123 4567",
        "customer_id":"cus_1","created_at":"2025-12-21T10:00:00.000Z","tags":["vip","shipping"],
        "assignee_id":"0f8c3c1e-1111-2222-3333-444455556666"}"#
        .to_vec();
    let inputs = [
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
    ];
    let mut group = c.benchmark_group("normalize");
    for (name, source, body) in &inputs {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| normalize(*source, black_box(body), &cfg, now).expect("normalizes"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
