//! Native benchmark of the edge query router: ns per `route()` decision, per
//! `classify()` alone and per `cache_get` hit. `cargo bench --bench router`
//!
//! The router runs on every request a worker serves, so its cost must be noise next
//! to a network round trip (target: well under 1 µs per typical decision).

use std::hint::black_box;
use std::time::Instant;

use edgesync::router::{classify, parse_regions, Location, Router, RouterOptions};

const STATEMENTS: &[(&str, &str)] = &[
    ("point select", "select id, name, email from users where id = ?"),
    (
        "join",
        "select o.id, o.total, u.name from orders o join users u on u.id = o.user_id where o.created_at > ? order by o.id limit 50",
    ),
    (
        "CTE write",
        "with recent as (select id from orders where created_at > ?) update orders set archived = 1 where id in (select id from recent)",
    ),
    ("insert returning", "insert into events (kind, payload) values (?, ?) returning id"),
    ("pragma", "pragma table_info(users)"),
    ("3 statements", "begin; insert into t (a) values (?); commit"),
];

/// Runs `f` `iters` times per round, 5 rounds; the median ns per call.
fn ns_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..iters {
                f();
            }
            t0.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn row(name: &str, ns: f64) {
    println!("{name:<28} {ns:>10.1} {:>14.0}", 1e9 / ns);
}

fn main() {
    let regions = parse_regions(
        r#"[
        {"id": "iad", "url": "https://iad.example", "role": "primary", "location": "38.9,-77.4"},
        {"id": "fra", "url": "https://fra.example", "role": "replica", "location": "50.1,8.7"},
        {"id": "sin", "url": "https://sin.example", "role": "replica", "location": "1.35,103.8"},
        {"id": "gru", "url": "https://gru.example", "role": "replica", "location": "-23.5,-46.6"}
    ]"#,
    )
    .expect("regions");
    let mut router = Router::new(regions, RouterOptions::default()).expect("router");
    for (i, latency) in [(0, 80.0), (1, 12.0), (2, 150.0), (3, 40.0)] {
        for k in 0..10 {
            router.begin(i);
            router.report_success(i, latency + k as f64, Some(1000), 0.0);
        }
    }
    let user = Location::parse("48.85,2.35").ok();
    let iters = 200_000;

    println!("edgesync router, native (median of 5 rounds x {iters})");
    println!("{:<28} {:>10} {:>14}", "operation", "ns/op", "ops/s");
    let mut now = 1.0;
    for (name, sql) in STATEMENTS {
        let ns = ns_per_op(iters, || {
            now += 0.001;
            let plan = router
                .route(black_box(sql), "[42]", "service", Some("client-7"), user, now)
                .expect("route");
            black_box(plan);
        });
        row(&format!("route: {name}"), ns);
    }
    for (name, sql) in STATEMENTS {
        let ns = ns_per_op(iters, || {
            black_box(classify(black_box(sql)).expect("classify"));
        });
        row(&format!("classify: {name}"), ns);
    }

    // The hot cached read: one key among 1000 cached entries.
    let plan = router
        .route(STATEMENTS[0].1, "[42]", "service", None, user, now)
        .expect("route");
    let key = plan.cache_key.expect("cacheable");
    for i in 0..1000 {
        router.cache_put(
            format!("{}\u{0}[{i}]", STATEMENTS[0].1),
            &plan.reads,
            Some(1000),
            "x".repeat(200),
            now,
        );
    }
    router.cache_put(
        key.clone(),
        &plan.reads,
        Some(1000),
        "[[42,\"ada\",\"ada@example.com\"]]".into(),
        now,
    );
    let ns = ns_per_op(iters * 5, || {
        black_box(router.cache_get(black_box(&key), None, now + 1.0).expect("hit"));
    });
    row("cache_get hit", ns);
    let ns = ns_per_op(iters, || {
        let plan = router
            .route(STATEMENTS[0].1, "[42]", "service", None, user, now + 1.0)
            .expect("route");
        black_box(
            router
                .cache_get(plan.cache_key.as_deref().expect("key"), None, now + 1.0)
                .expect("hit"),
        );
    });
    row("route + cache_get hit", ns);
}
