//! Router tests: classification table, property tests, routing behaviour.

use proptest::prelude::*;

use super::*;

/// Expectation mini-language: `read|write|error` then optional `r=a,b` (reads),
/// `w=t` (writes), `unknown` (writes_unknown), `nondet`, `cache`, `n=3`.
/// Unmentioned: no reads, no writes, known writes, deterministic, not cacheable,
/// one statement.
const CASES: &[(&str, &str)] = &[
    // Plain reads and comments everywhere.
    ("select 1", "read cache"),
    ("SELECT * FROM users WHERE id = ?", "read r=users cache"),
    ("/* insert */ select * from t", "read r=t cache"),
    ("-- update\nselect * from t", "read r=t cache"),
    ("select 1 -- ; delete from t", "read cache"),
    ("select /* ; drop table t; */ 2", "read cache"),
    ("  \n\t select 1 ;;; ", "read cache"),
    ("values (1), (2)", "read cache"),
    // Strings and identifiers that contain keywords and semicolons.
    ("select 'insert into t; delete from u' from a", "read r=a cache"),
    ("select 'it''s; drop table x' as s", "read cache"),
    ("select \"delete\", [update], `insert` from \"My Table\"", "read r=my table cache"),
    ("select x'ab', x from t", "read r=t cache"),
    // Table extraction.
    ("select * from a join b on a.id = b.id left outer join c using (id)", "read r=a,b,c cache"),
    ("select * from a, b as bb, c cc where 1", "read r=a,b,c cache"),
    ("select * from main.users u, \"Temp\".\"Orders\" o", "read r=users,orders cache"),
    ("select * from [Weird Name] natural join `x``y`", "read r=weird name,x`y cache"),
    ("select * from (select id from inner_t) s, outer_t", "read r=inner_t,outer_t cache"),
    ("select * from t where exists (select 1 from u where u.id = t.id)", "read r=t,u cache"),
    ("select * from t indexed by i, u not indexed", "read r=t,u cache"),
    ("select * from json_each(?) j, t", "read r=t cache"),
    ("select * from sqlite_master", "read r=sqlite_schema cache"),
    ("select * from pragma_table_info('t')", "read r=sqlite_schema nondet"),
    ("select a is not distinct from b from t", "read r=t cache"),
    ("select * from t1 union all select * from t2 order by 1", "read r=t1,t2 cache"),
    // CTEs.
    ("WITH x AS (SELECT * FROM t) SELECT * FROM x", "read r=t cache"),
    ("with x(a, b) as (select 1, (2)) select * from x, main.x", "read r=x cache"),
    (
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10) SELECT n FROM c",
        "read cache",
    ),
    (
        "with a as (select ')' from t where f((1), '(')), b as materialized (select * from a) select * from b join u",
        "read r=t,u nondet",
    ),
    ("WITH x AS (SELECT * FROM s) INSERT INTO t SELECT * FROM x", "write r=s w=t"),
    ("with x as (select 1) update t set a = (select * from x)", "write w=t"),
    ("with x as (select 1) delete from t where a in x", "write w=t"),
    ("with x as not materialized (select 1) replace into t select * from x", "write w=t"),
    ("with bad select 1", "write unknown"),
    ("select * from (with y as (select * from t) select * from y)", "read r=t cache"),
    // Writes.
    ("insert into Users (a) values (1) returning id", "write w=users"),
    ("INSERT OR REPLACE INTO main.\"T\" VALUES (1)", "write w=t"),
    ("replace into t values (1)", "write w=t"),
    ("update or ignore t set a = 1 from u where u.id = t.id", "write r=u w=t"),
    ("delete from t where id in (select id from u) returning *", "write r=u w=t"),
    ("insert into t select * from u on conflict do update set a = excluded.a", "write r=u w=t"),
    ("create table if not exists t (id integer primary key)", "write w=t,sqlite_schema"),
    ("create temp table t as select * from u", "write r=u w=t,sqlite_schema"),
    ("create unique index if not exists i on main.t (a)", "write w=t,sqlite_schema"),
    ("drop table if exists t", "write w=t,sqlite_schema"),
    ("drop index i", "write w=sqlite_schema unknown"),
    ("alter table t rename to u", "write w=t,u,sqlite_schema"),
    ("alter table t add column c", "write w=t,sqlite_schema"),
    (
        "create trigger tr after insert on t begin update u set n = n + 1; insert into v values (case when 1 then 2 end); end",
        "write w=sqlite_schema",
    ),
    ("vacuum", "write unknown"),
    ("reindex t", "write unknown"),
    ("analyze", "write unknown"),
    ("attach database 'x.db' as x", "write unknown refused"),
    ("detach x", "write unknown refused"),
    ("frobnicate the database", "write unknown"),
    ("(select 1)", "write unknown"),
    // Transactions.
    ("BEGIN", "write unknown"),
    ("begin immediate; insert into t values (1); commit", "write w=t unknown n=3"),
    ("savepoint a; release a; rollback; end", "write unknown n=4"),
    // PRAGMA.
    ("pragma table_info(users)", "read"),
    ("PRAGMA main.index_list('t')", "read"),
    ("pragma user_version", "read"),
    ("pragma user_version = 5", "write unknown"),
    ("pragma user_version(5)", "write unknown"),
    ("pragma journal_mode=wal", "write unknown refused"),
    ("pragma optimize", "write unknown refused"),
    ("pragma integrity_check", "read"),
    // EXPLAIN.
    ("explain query plan select * from t", "read r=t"),
    ("explain insert into t values (1)", "read"),
    // Multi-statement.
    ("select 1; insert into t values (1)", "write w=t n=2"),
    ("select * from a; select * from b", "read r=a,b n=2"),
    ("select 1;;select 2;", "read n=2"),
    // Determinism.
    ("select random()", "read nondet"),
    ("select * from t where d > date('now')", "read r=t nondet"),
    ("select current_timestamp", "read nondet"),
    ("select last_insert_rowid()", "read nondet"),
    ("select \"random\"()", "read nondet"),
    ("select date, time from t", "read r=t cache"),
    ("select sqlite_version()", "read nondet"),
    ("select uuid()", "read nondet"),
    ("select abs(-1), upper(x), count(*) over (partition by y) from t", "read r=t cache"),
    ("insert into t values (randomblob(4))", "write w=t nondet"),
    // Refused for everyone (src/auth): host files, raw pages, worker tables.
    ("select writefile('/tmp/x', 'y')", "read nondet refused"),
    ("select * from sqlite_dbpage", "read r=sqlite_dbpage refused cache"),
    ("select * from es_sessions", "read r=es_sessions refused cache"),
    // Unparseable.
    ("", "error"),
    ("   ", "error"),
    ("-- just a comment", "error"),
    ("/* x */ ; ; ", "error"),
    ("select 'unterminated", "error"),
    ("select \"unterminated", "error"),
    ("select [unterminated", "error"),
    ("select 1 /* unterminated", "error"),
    ("select (1", "error"),
    ("select 1)", "error"),
    ("select 1; select (", "error"),
];

fn check_case(sql: &str, spec: &str) {
    let mut words = spec.split(' ');
    let kind = words.next().unwrap_or_default();
    let got = classify(sql);
    if kind == "error" {
        let err = got.expect_err(sql);
        assert_eq!(err.code(), "QUERY_UNPARSEABLE", "{sql}");
        return;
    }
    let c = got.unwrap_or_else(|e| panic!("{sql:?}: {e}"));
    let (mut reads, mut writes) = (Vec::<String>::new(), Vec::<String>::new());
    let (mut unknown, mut det, mut cache, mut n, mut refused) = (false, true, false, 1, false);
    for w in words {
        if let Some(r) = w.strip_prefix("r=") {
            reads = r.split(',').map(str::to_owned).collect();
        } else if let Some(r) = w.strip_prefix("w=") {
            writes = r.split(',').map(str::to_owned).collect();
        } else if let Some(r) = w.strip_prefix("n=") {
            n = r.parse().unwrap();
        } else {
            match w {
                "unknown" => unknown = true,
                "nondet" => det = false,
                "cache" => cache = true,
                "refused" => refused = true,
                // A table name with a space: glue it to the previous list item.
                other => {
                    let mut parts = other.split(',');
                    let last = reads.last_mut().expect("continuation after r=");
                    last.push(' ');
                    last.push_str(parts.next().unwrap_or_default());
                    reads.extend(parts.map(str::to_owned));
                }
            }
        }
    }
    let want = if kind == "read" {
        StatementKind::Read
    } else {
        StatementKind::Write
    };
    assert_eq!(c.kind, want, "{sql}");
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&c.reads), sorted(&reads), "reads of {sql}");
    assert_eq!(sorted(&c.writes), sorted(&writes), "writes of {sql}");
    assert_eq!(c.writes_unknown, unknown, "writes_unknown of {sql}");
    assert_eq!(c.deterministic, det, "deterministic of {sql}");
    assert_eq!(c.cacheable, cache, "cacheable of {sql}");
    assert_eq!(c.statements, n, "statements of {sql}");
    assert_eq!(c.refused.is_some(), refused, "refused of {sql}: {:?}", c.refused);
}

#[test]
fn classification_table() {
    assert!(CASES.len() >= 40);
    for (sql, spec) in CASES {
        check_case(sql, spec);
    }
}

#[test]
fn classification_serializes_camel_case() {
    let c = classify("select * from t").unwrap();
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["kind"], "read");
    assert_eq!(v["writesUnknown"], false);
    assert_eq!(v["reads"][0], "t");
}

const FRAGMENTS: &[&str] = &[
    "select",
    "insert",
    "into",
    "with",
    "as",
    "(",
    ")",
    ",",
    ";",
    "'",
    "''",
    "\"",
    "[",
    "]",
    "`",
    "/*",
    "*/",
    "--",
    "\n",
    " ",
    "x'",
    "from",
    "join",
    "t",
    "main",
    ".",
    "pragma",
    "=",
    "returning",
    "é",
    "?1",
    ":a",
    "create",
    "trigger",
    "begin",
    "end",
    "case",
    "recursive",
    "distinct",
    "is",
    "not",
    "values",
    "update",
    "delete",
    "random",
    "(",
];

/// Statements whose only spaces are between tokens, for reshuffling whitespace.
const SPACED: &[&str] = &[
    "select * from t where a = 'x'",
    "with x as ( select 1 ) insert into t select * from x",
    "pragma user_version = 3",
    "select a , b from t join u on t.id = u.id",
    "delete from t returning id",
    "begin ; update t set a = 1 ; commit",
    "explain select random ( )",
    "create index i on t ( a )",
];

fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_owned()),
        Just("\n\t".to_owned()),
        "[a-z ;'\"]{0,8}".prop_map(|s| format!("/* {s} */")),
        "[a-z ;'\"*/]{0,8}".prop_map(|s| format!(" -- {s}\n")),
    ]
}

proptest! {
    #[test]
    fn classify_never_panics_on_any_string(s in any::<String>()) {
        let _ = classify(&s);
    }

    #[test]
    fn classify_never_panics_on_sql_fragments(parts in prop::collection::vec(0..FRAGMENTS.len(), 0..40)) {
        let sql: String = parts.iter().map(|&i| FRAGMENTS[i]).collect::<Vec<_>>().join(" ");
        let _ = classify(&sql);
        let glued: String = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        let _ = classify(&glued);
    }

    #[test]
    fn comments_and_whitespace_do_not_change_classification(
        which in 0..SPACED.len(),
        seps in prop::collection::vec(separator(), 40),
        pre in separator(),
        post in separator(),
    ) {
        let sql = SPACED[which];
        let want = classify(sql).unwrap();
        let mut out = pre;
        for (i, tok) in sql.split(' ').enumerate() {
            if i > 0 {
                out.push_str(&seps[i % seps.len()]);
            }
            out.push_str(tok);
        }
        out.push_str(&post);
        // A trailing line comment needs no newline; a trailing one after it does not matter.
        let got = classify(&out).unwrap();
        prop_assert_eq!(got, want, "{}", out);
    }

    #[test]
    fn router_never_panics(sql in any::<String>(), region in 0usize..10, now in any::<f64>(), lat in any::<f64>()) {
        let mut r = router(4, RouterOptions::default());
        let user = Location::new(lat % 90.0, lat % 180.0).ok();
        let _ = r.route(&sql, "", "service", Some("c"), user, now);
        let weird = Location { lat: f64::NAN, lon: lat };
        let _ = r.route("select 1", "", "service", Some("c"), Some(weird), now);
        r.begin(region);
        r.report_success(region, now, Some(region as u64), now);
        r.report_failure(region, Failure::Timeout, now);
        r.record_write(Some("c"), Some(1), std::slice::from_ref(&sql), region % 2 == 0, now);
        r.cache_put(sql.clone(), &[], None, sql.clone(), now);
        let _ = r.cache_get(&sql, Some(3), now);
        let _ = r.probes_due(now);
        let _ = r.region_status(now);
    }
}

// ---------------------------------------------------------------------------
// Router

fn region(id: &str, role: Role, location: Option<(f64, f64)>) -> RegionConfig {
    RegionConfig {
        id: id.into(),
        url: format!("https://{id}.example"),
        priority: DEFAULT_PRIORITY,
        location: location.map(|(lat, lon)| Location { lat, lon }),
        role,
    }
}

/// Region 0 is the primary, 1.. are replicas; no locations.
fn router(n: usize, options: RouterOptions) -> Router {
    let mut regions = vec![region("p", Role::Primary, None)];
    for i in 1..n {
        regions.push(region(&format!("r{i}"), Role::Replica, None));
    }
    Router::new(regions, options).unwrap()
}

fn sample(r: &mut Router, region: usize, latency: f64, index: Option<u64>, now: f64) {
    r.begin(region);
    r.report_success(region, latency, index, now);
}

fn first_target(r: &mut Router, sql: &str, client: Option<&str>, now: f64) -> usize {
    r.route(sql, "", "service", client, None, now).unwrap().targets[0]
}

#[test]
fn writes_always_go_to_the_primary_only() {
    let mut r = router(4, RouterOptions::default());
    for i in 1..4 {
        sample(&mut r, i, 1.0, Some(100), 0.0);
    }
    sample(&mut r, 0, 500.0, Some(100), 0.0);
    for sql in [
        "insert into t values (1)",
        "select 1; delete from t",
        "pragma user_version = 1",
        "begin",
        "with x as (select 1) update t set a = 1",
        "what is this",
    ] {
        let plan = r.route(sql, "", "service", Some("c"), None, 1.0).unwrap();
        assert_eq!(plan.kind, StatementKind::Write, "{sql}");
        assert_eq!(plan.targets, vec![0], "{sql}");
        assert_eq!(plan.cache_key, None);
    }
    // Even with the primary's breaker open: no replica fallback.
    for _ in 0..3 {
        r.report_failure(0, Failure::Unreachable, 2.0);
    }
    assert!(!r.primary_available(3.0));
    assert_eq!(
        r.route("insert into t values (1)", "", "service", None, None, 3.0)
            .unwrap()
            .targets,
        vec![0]
    );
    assert!(r.primary_available(2.0 + 5000.0));
    assert_eq!(r.stats().writes, 7);
}

#[test]
fn reads_list_every_region_with_the_primary_as_fallback() {
    let mut r = router(4, RouterOptions::default());
    let plan = r.route("select 1", "", "service", None, None, 0.0).unwrap();
    let mut sorted = plan.targets.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2, 3]);
}

#[test]
fn power_of_two_choices_spreads_and_avoids_slow_regions() {
    let mut r = router(3, RouterOptions::default());
    sample(&mut r, 0, 50.0, None, 0.0);
    sample(&mut r, 1, 10.0, None, 0.0);
    sample(&mut r, 2, 10.0, None, 0.0);
    let mut counts = [0usize; 3];
    for _ in 0..3000 {
        counts[first_target(&mut r, "select * from t", None, 1.0)] += 1;
    }
    assert!(
        counts[1] > 800 && counts[2] > 800,
        "equal replicas both get traffic: {counts:?}"
    );
    assert_eq!(counts[0], 0, "the slower primary never wins a pair: {counts:?}");

    // A replica with 10× the latency gets much less than its twin.
    let mut r = router(4, RouterOptions::default());
    sample(&mut r, 0, 20.0, None, 0.0);
    sample(&mut r, 1, 10.0, None, 0.0);
    sample(&mut r, 2, 10.0, None, 0.0);
    sample(&mut r, 3, 100.0, None, 0.0);
    let mut counts = [0usize; 4];
    for _ in 0..4000 {
        counts[first_target(&mut r, "select * from t", None, 1.0)] += 1;
    }
    assert!(counts[3] * 10 < counts[1], "{counts:?}");
    assert!(counts[1] > 1000 && counts[2] > 1000, "{counts:?}");
}

#[test]
fn in_flight_load_shifts_traffic() {
    let mut r = router(3, RouterOptions::default());
    for i in 0..3 {
        sample(&mut r, i, 10.0, None, 0.0);
    }
    for _ in 0..6 {
        r.begin(1); // region 1 is busy
    }
    let mut counts = [0usize; 3];
    for _ in 0..900 {
        counts[first_target(&mut r, "select 1", None, 1.0)] += 1;
    }
    assert!(counts[1] < counts[0] / 4 && counts[1] < counts[2] / 4, "{counts:?}");
}

#[test]
fn locality_prior_picks_the_nearest_region_without_samples() {
    let regions = vec![
        region("iad", Role::Primary, Some((38.9, -77.4))),
        region("syd", Role::Replica, Some((-33.9, 151.2))),
        region("fra", Role::Replica, Some((50.1, 8.7))),
        region("sin", Role::Replica, Some((1.35, 103.8))),
    ];
    let mut r = Router::new(regions, RouterOptions::default()).unwrap();
    let paris = Location::parse("48.85,2.35").ok();
    let tokyo = Location::parse("35.7,139.7").ok();
    // p2c among 4: the nearest wins whenever drawn, and it leads the fallbacks otherwise.
    let mut nearest_first = 0;
    for _ in 0..200 {
        let plan = r.route("select 1", "", "service", None, paris, 0.0).unwrap();
        nearest_first += usize::from(plan.targets[0] == 2);
        assert!(plan.targets[0] == 2 || plan.targets[1] == 2, "{:?}", plan.targets);
    }
    assert!(nearest_first >= 80, "{nearest_first}");
    // Fallbacks after the first choice are ordered by distance from the user.
    let regions = r.regions().to_vec();
    for _ in 0..20 {
        let plan = r.route("select 1", "", "service", None, tokyo, 0.0).unwrap();
        assert_eq!(plan.targets.len(), 4);
        let d: Vec<f64> = plan.targets[1..]
            .iter()
            .map(|&t| tokyo.unwrap().distance_km(&regions[t].location.unwrap()))
            .collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "{:?} {d:?}", plan.targets);
    }
}

#[test]
fn nearest_is_a_fixed_choice_between_two() {
    let regions = vec![
        region("iad", Role::Primary, Some((38.9, -77.4))),
        region("fra", Role::Replica, Some((50.1, 8.7))),
    ];
    let mut r = Router::new(regions, RouterOptions::default()).unwrap();
    let paris = Location::parse("48.85,2.35").ok();
    let nyc = Location::parse("40.7,-74.0").ok();
    for _ in 0..20 {
        assert_eq!(
            r.route("select 1", "", "service", None, paris, 0.0).unwrap().targets,
            vec![1, 0]
        );
        assert_eq!(
            r.route("select 1", "", "service", None, nyc, 0.0).unwrap().targets,
            vec![0, 1]
        );
    }
}

#[test]
fn locality_still_counts_once_latencies_are_measured() {
    // The worker measures both regions alike (e.g. all on one network); the caller's
    // location must still pick the region near it, and a much slower near region
    // must still lose.
    let regions = vec![
        region("iad", Role::Primary, Some((38.9, -77.4))),
        region("fra", Role::Replica, Some((50.1, 8.7))),
    ];
    let mut r = Router::new(regions, RouterOptions::default()).unwrap();
    sample(&mut r, 0, 2.0, None, 0.0);
    sample(&mut r, 1, 2.5, None, 0.0);
    let paris = Location::parse("48.85,2.35").ok();
    let nyc = Location::parse("40.7,-74.0").ok();
    for _ in 0..20 {
        assert_eq!(
            r.route("select 1", "", "service", None, paris, 1.0).unwrap().targets[0],
            1
        );
        assert_eq!(
            r.route("select 1", "", "service", None, nyc, 1.0).unwrap().targets[0],
            0
        );
    }
    for _ in 0..10 {
        sample(&mut r, 1, 500.0, None, 1.0);
    }
    assert_eq!(
        r.route("select 1", "", "service", None, paris, 2.0).unwrap().targets[0],
        0
    );
}

#[test]
fn breaker_opens_skips_half_opens_and_closes() {
    let mut r = router(3, no_refresh());
    sample(&mut r, 0, 100.0, None, 0.0);
    sample(&mut r, 1, 1.0, None, 0.0); // region 1 is by far the best
    sample(&mut r, 2, 100.0, None, 0.0);
    for k in 0..3 {
        r.begin(1);
        r.report_failure(1, Failure::Timeout, 100.0);
        let state = r.region_status(100.0)[1].state;
        assert_eq!(
            state,
            if k < 2 {
                BreakerState::Closed
            } else {
                BreakerState::Open
            }
        );
    }
    assert_eq!(r.stats().breaker_opens, 1);
    assert!(!r.region_status(100.0)[1].healthy);
    for _ in 0..200 {
        let plan = r.route("select 1", "", "service", None, None, 200.0).unwrap();
        assert_ne!(plan.targets[0], 1);
        assert_eq!(*plan.targets.last().unwrap(), 1, "open regions come last");
    }
    // After the cooldown: half-open, one probe only.
    assert_eq!(r.region_status(5100.0)[1].state, BreakerState::HalfOpen);
    let due = r.probes_due(5100.0);
    assert_eq!(due, vec![1]);
    assert!(r.probes_due(5100.0).is_empty(), "the probe slot is taken");
    for _ in 0..50 {
        assert_ne!(first_target(&mut r, "select 1", None, 5101.0), 1);
    }
    // The probe fails: open again, cooldown doubled (10 s).
    r.report_failure(1, Failure::Server, 5200.0);
    assert_eq!(r.stats().breaker_opens, 2);
    assert_eq!(r.region_status(5200.0 + 9999.0)[1].state, BreakerState::Open);
    assert_eq!(r.region_status(5200.0 + 10_000.0)[1].state, BreakerState::HalfOpen);
    // A real read can be the probe: the best region is routed to once, then skipped.
    let t = 15_300.0;
    let mut hits = 0;
    for _ in 0..200 {
        hits += usize::from(first_target(&mut r, "select 1", None, t) == 1);
    }
    assert!(
        (1..=1).contains(&hits),
        "exactly one probe went to the half-open region, got {hits}"
    );
    r.begin(1);
    r.report_success(1, 1.0, None, t + 1.0);
    assert_eq!(r.region_status(t + 1.0)[1].state, BreakerState::Closed);
    // Closed again: consecutive failures were reset, so two more do not open it.
    r.report_failure(1, Failure::Timeout, t + 2.0);
    r.report_failure(1, Failure::Timeout, t + 2.0);
    assert_eq!(r.region_status(t + 2.0)[1].state, BreakerState::Closed);
}

/// Options without latency-refresh probes, for tests about breaker probes alone.
fn no_refresh() -> RouterOptions {
    RouterOptions {
        refresh_probe_ms: 0.0,
        ..RouterOptions::default()
    }
}

#[test]
fn stale_latency_estimates_get_refresh_probes() {
    let mut r = router(3, RouterOptions::default());
    sample(&mut r, 0, 1.0, None, 0.0);
    sample(&mut r, 1, 500.0, None, 0.0); // one slow answer: never chosen again by score
    sample(&mut r, 2, 1.0, None, 0.0);
    assert!(r.probes_due(4_999.0).is_empty());
    assert_eq!(r.probes_due(5_000.0), vec![0, 1, 2]);
    assert!(r.probes_due(5_001.0).is_empty(), "one refresh per interval");
    sample(&mut r, 0, 1.0, None, 6_000.0);
    sample(&mut r, 2, 1.0, None, 6_000.0);
    assert_eq!(r.probes_due(10_000.0), vec![1], "only the region without fresh samples");
    // An open breaker is probed by its own rules, not refreshed.
    for _ in 0..3 {
        r.report_failure(2, Failure::Timeout, 10_000.0);
    }
    assert!(!r.probes_due(12_000.0).contains(&2));
}

#[test]
fn a_lost_probe_frees_its_slot_after_the_lease() {
    let mut r = router(2, no_refresh());
    for _ in 0..3 {
        r.report_failure(1, Failure::Timeout, 0.0);
    }
    assert_eq!(r.probes_due(5000.0), vec![1]);
    assert!(r.probes_due(5000.0 + PROBE_LEASE_MIN_MS - 1.0).is_empty());
    assert_eq!(r.probes_due(5000.0 + PROBE_LEASE_MIN_MS), vec![1]);
}

#[test]
fn read_your_writes_floor() {
    let mut r = router(3, RouterOptions::default());
    sample(&mut r, 0, 100.0, Some(10), 0.0);
    sample(&mut r, 1, 1.0, Some(5), 0.0);
    sample(&mut r, 2, 1.0, Some(5), 0.0);
    r.record_write(Some("alice"), Some(10), &["t".to_owned()], false, 1.0);
    for _ in 0..50 {
        let plan = r
            .route("select * from t", "", "service", Some("alice"), None, 2.0)
            .unwrap();
        assert_eq!(plan.targets[0], 0, "replicas at 5 are behind alice's 10");
        assert_eq!(plan.min_replication_index, Some(10));
        // Other clients are unaffected.
        let other = r
            .route("select * from t", "", "service", Some("bob"), None, 2.0)
            .unwrap();
        assert_ne!(other.targets[0], 0);
        assert_eq!(other.min_replication_index, None);
    }
    assert_eq!(r.stats().ryw_primary_reads, 50);
    // Replica 1 catches up: eligible again (and faster than the primary).
    sample(&mut r, 1, 1.0, Some(10), 3.0);
    for _ in 0..20 {
        assert_eq!(first_target(&mut r, "select * from t", Some("alice"), 4.0), 1);
    }
    // The floor expires after ryw_ttl_ms.
    let later = 1.0 + 60_000.0;
    let plan = r
        .route("select * from t", "", "service", Some("alice"), None, later)
        .unwrap();
    assert_eq!(plan.min_replication_index, None);
    assert_eq!(r.region_status(later)[2].lag_frames, Some(5));
    assert_eq!(r.region_status(later)[0].lag_frames, None);
}

#[test]
fn cache_hits_misses_ttl_and_replication_index() {
    let mut r = router(2, RouterOptions::default());
    let plan = r
        .route("select * from t where id = ?", "[1]", "service", None, None, 0.0)
        .unwrap();
    let key = plan.cache_key.clone().expect("cacheable");
    assert_eq!(key, "service\u{0}select * from t where id = ?\u{0}[1]");
    // Another scope, another key: a result is never served across principals.
    let other = r
        .route("select * from t where id = ?", "[1]", "user:eve", None, None, 0.0)
        .unwrap();
    assert_ne!(other.cache_key.as_deref(), Some(key.as_str()));
    assert_eq!(r.cache_get(&key, None, 0.0), None);
    r.cache_put(key.clone(), &plan.reads, Some(7), "rows".into(), 0.0);
    assert_eq!(r.cache_get(&key, None, 1.0), Some("rows"));
    assert_eq!(r.cache_get(&key, Some(7), 1.0), Some("rows"));
    assert_eq!(r.cache_get(&key, Some(8), 1.0), None, "read before the caller's floor");
    assert_eq!(r.cache_get(&key, None, 1999.0), Some("rows"));
    assert_eq!(r.cache_get(&key, None, 2000.0), None, "expired");
    assert_eq!(r.stats().cache_entries, 0);
    let s = r.stats();
    assert_eq!((s.cache_hits, s.cache_misses, s.cache_expirations), (3, 3, 1));
    // Not cacheable: non-deterministic, multi-statement, pragma, writes.
    for sql in [
        "select random()",
        "select 1; select 2",
        "pragma table_info(t)",
        "insert into t values (1)",
    ] {
        assert_eq!(
            r.route(sql, "", "service", None, None, 0.0).unwrap().cache_key,
            None,
            "{sql}"
        );
    }
}

#[test]
fn cache_lru_evicts_by_count_and_bytes() {
    let opts = RouterOptions {
        cache_max_entries: 3,
        cache_max_bytes: 100,
        ..RouterOptions::default()
    };
    let mut r = router(1, opts);
    for k in ["a", "b", "c"] {
        r.cache_put(k.into(), &[], None, "v".into(), 0.0);
    }
    assert!(r.cache_get("a", None, 1.0).is_some()); // a is now most recent
    r.cache_put("d".into(), &[], None, "v".into(), 1.0); // evicts b
    assert!(r.cache_get("b", None, 1.0).is_none());
    assert!(r.cache_get("c", None, 1.0).is_some());
    assert_eq!(r.stats().cache_evictions, 1);
    // Bytes: 60 + 2 new ones would pass 100.
    r.cache_put("big".into(), &[], None, "x".repeat(57), 2.0);
    let s = r.stats();
    assert!(s.cache_bytes <= 100, "{s:?}");
    assert!(r.cache_get("big", None, 2.0).is_some());
    assert!(s.cache_evictions >= 2);
    // Bigger than the whole cache: not stored, nothing evicted.
    let before = r.stats();
    r.cache_put("huge".into(), &[], None, "x".repeat(200), 3.0);
    assert!(r.cache_get("huge", None, 3.0).is_none());
    assert_eq!(r.stats().cache_entries, before.cache_entries);
    // Replacing a key keeps one entry and a correct byte count.
    let mut r = router(1, RouterOptions::default());
    r.cache_put("k1".into(), &[], None, "abc".into(), 0.0);
    r.cache_put("k2".into(), &[], None, "de".into(), 0.0);
    r.cache_put("k1".into(), &[], None, "f".into(), 0.0);
    assert_eq!(r.cache_get("k1", None, 0.0), Some("f"));
    let s = r.stats();
    assert_eq!((s.cache_entries, s.cache_bytes), (2, 3 + 4));
}

#[test]
fn cache_invalidation_by_table_unknown_and_stale_puts() {
    let mut r = router(2, RouterOptions::default());
    let t = vec!["t".to_owned()];
    let u = vec!["u".to_owned()];
    let tu = vec!["t".to_owned(), "u".to_owned()];
    r.cache_put("qt".into(), &t, Some(1), "1".into(), 0.0);
    r.cache_put("qu".into(), &u, Some(1), "2".into(), 0.0);
    r.cache_put("qtu".into(), &tu, Some(1), "3".into(), 0.0);
    r.cache_put("q1".into(), &[], Some(1), "4".into(), 0.0);
    r.record_write(None, Some(5), &t, false, 1.0);
    assert!(r.cache_get("qt", None, 1.0).is_none());
    assert!(r.cache_get("qtu", None, 1.0).is_none());
    assert_eq!(r.cache_get("qu", None, 1.0), Some("2"));
    assert_eq!(r.cache_get("q1", None, 1.0), Some("4"));
    assert_eq!(r.stats().cache_invalidations, 2);
    // A racing read of t from before the write (index 3 < 5) is not cached...
    r.cache_put("qt".into(), &t, Some(3), "stale".into(), 2.0);
    assert!(r.cache_get("qt", None, 2.0).is_none());
    // ...one at or after it is.
    r.cache_put("qt".into(), &t, Some(5), "fresh".into(), 2.0);
    assert_eq!(r.cache_get("qt", None, 2.0), Some("fresh"));
    // An unknown write drops everything, including table-less reads.
    r.record_write(None, Some(6), &[], true, 3.0);
    assert_eq!(r.stats().cache_entries, 0);
    assert!(r.cache_get("q1", None, 3.0).is_none());
    // Slots are reused correctly after a full clear.
    r.cache_put("qu".into(), &u, Some(6), "again".into(), 4.0);
    r.record_write(None, None, &t, false, 4.0);
    assert_eq!(r.cache_get("qu", None, 4.0), Some("again"));
}

#[test]
fn many_puts_to_one_table_stay_bounded() {
    let opts = RouterOptions {
        cache_max_entries: 10,
        ..RouterOptions::default()
    };
    let mut r = router(1, opts);
    let t = vec!["t".to_owned()];
    for i in 0..10_000 {
        r.cache_put(format!("k{i}"), &t, None, "v".into(), 0.0);
    }
    assert!(r.cache.by_table_refs("t") <= 64, "{}", r.cache.by_table_refs("t"));
    r.record_write(None, None, &t, false, 1.0);
    assert_eq!(r.stats().cache_entries, 0);
    assert_eq!(r.stats().cache_invalidations, 10);
}

#[test]
fn unparseable_is_rejected_and_counted() {
    let mut r = router(2, RouterOptions::default());
    let err = r.route("select 'x", "", "service", None, None, 0.0).unwrap_err();
    assert_eq!(err.code(), "QUERY_UNPARSEABLE");
    assert_eq!(r.stats().rejected, 1);
}

#[test]
fn stats_and_status_serialize_camel_case() {
    let mut r = router(2, RouterOptions::default());
    r.route("select 1", "", "service", None, None, 0.0).unwrap();
    let s = serde_json::to_value(r.stats()).unwrap();
    assert_eq!(s["reads"], 1);
    assert!(s["routed"]["p"].is_number() && s["rywPrimaryReads"] == 0);
    let st = serde_json::to_value(r.region_status(0.0)).unwrap();
    assert_eq!(st[0]["state"], "closed");
    assert_eq!(st[0]["role"], "primary");
    assert!(st[1]["ewmaLatencyMs"].is_null());
    for _ in 0..3 {
        r.report_failure(1, Failure::Timeout, 0.0);
    }
    let st = serde_json::to_value(r.region_status(5000.0)).unwrap();
    assert_eq!(st[1]["state"], "halfOpen");
    assert_eq!(serde_json::to_value(Failure::Unreachable).unwrap(), "unreachable");
    assert_eq!(Failure::parse("server").unwrap(), Failure::Server);
    assert!(Failure::parse("nope").is_err());
}

#[test]
fn region_validation() {
    let ok = r#"[{"id":"a","url":"https://a","role":"primary"},{"id":"b","url":"wss://b","role":"replica","location":{"lat":1,"lon":2},"priority":5}]"#;
    let regions = parse_regions(ok).unwrap();
    assert_eq!(regions[0].priority, DEFAULT_PRIORITY);
    assert_eq!(regions[1].location, Some(Location { lat: 1.0, lon: 2.0 }));
    let bad = [
        ("{}", "array"),
        ("[]", "at least one"),
        ("not json", "JSON"),
        (r#"[{"url":"https://a","role":"primary"}]"#, "id"),
        (
            r#"[{"id":"a","url":"https://a","role":"primary"},{"id":"a","url":"https://b","role":"replica"}]"#,
            "duplicate",
        ),
        (r#"[{"id":"a","url":"https://a","role":"replica"}]"#, "no region"),
        (
            r#"[{"id":"a","url":"https://a","role":"primary"},{"id":"b","url":"https://b","role":"primary"}]"#,
            "more than one primary",
        ),
        (
            r#"[{"id":"a","url":"https://a","role":"primary","location":"91,0"}]"#,
            "latitude",
        ),
        (
            r#"[{"id":"a","url":"https://a","role":"primary","location":{"lat":0,"lon":181}}]"#,
            "longitude",
        ),
        (
            r#"[{"id":"a","url":"https://a","role":"primary","location":"paris"}]"#,
            "lat,lon",
        ),
        (r#"[{"id":"a","url":"ftp://a","role":"primary"}]"#, "url"),
        (r#"[{"id":"a","url":"https://a","role":"leader"}]"#, "role"),
        (
            r#"[{"id":"a","url":"https://a","role":"primary","priority":-1}]"#,
            "priority",
        ),
        (
            r#"[{"id":"a","url":"https://a","role":"primary","prio":1}]"#,
            "unknown field",
        ),
    ];
    for (json, needle) in bad {
        let err = parse_regions(json).unwrap_err();
        assert_eq!(err.code(), "CONFIG_ERROR", "{json}");
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
    // Router::new validates hand-built lists too.
    assert!(Router::new(vec![], RouterOptions::default()).is_err());
    assert!(Router::new(vec![region("r", Role::Replica, None)], RouterOptions::default()).is_err());
}

#[test]
fn location_parsing_and_distance() {
    let a = Location::parse(" 48.85 , 2.35 ").unwrap();
    assert_eq!(a, Location { lat: 48.85, lon: 2.35 });
    assert_eq!(a.distance_km(&a), 0.0);
    let nyc = Location::parse("40.71,-74.01").unwrap();
    assert!((a.distance_km(&nyc) - 5837.0).abs() < 20.0, "{}", a.distance_km(&nyc));
    let antipode = Location {
        lat: -48.85,
        lon: -177.65,
    };
    assert!((a.distance_km(&antipode) - 20015.0).abs() < 10.0);
    for bad in ["", "1", "a,b", "NaN,0", "0,200", "1,2,3"] {
        assert!(Location::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn options_validation() {
    let o = RouterOptions::from_json("{}").unwrap();
    assert_eq!(o, RouterOptions::default());
    assert_eq!(o.cache_max_bytes, 32 << 20);
    let o = RouterOptions::from_json(r#"{"breakerFailures":5,"seed":42,"rywTtlMs":1000}"#).unwrap();
    assert_eq!((o.breaker_failures, o.seed, o.ryw_ttl_ms), (5, 42, 1000.0));
    for bad in [
        r#"{"ewmaAlpha":0}"#,
        r#"{"ewmaAlpha":1.5}"#,
        r#"{"breakerFailures":0}"#,
        r#"{"breakerCooldownMs":-1}"#,
        r#"{"cacheTtlMs":-5}"#,
        r#"{"rywTtlMs":-1}"#,
        r#"{"cacheMaxEntries":-1}"#,
        r#"{"ewmaAlfa":0.2}"#,
        r#"[]"#,
    ] {
        assert_eq!(
            RouterOptions::from_json(bad).unwrap_err().code(),
            "CONFIG_ERROR",
            "{bad}"
        );
    }
    let nan = RouterOptions {
        ewma_alpha: f64::NAN,
        ..RouterOptions::default()
    };
    assert!(Router::new(vec![region("p", Role::Primary, None)], nan).is_err());
}

#[test]
fn disabled_cache_hands_out_no_keys() {
    let mut r = router(
        2,
        RouterOptions {
            cache_ttl_ms: 0.0,
            ..RouterOptions::default()
        },
    );
    assert_eq!(
        r.route("select 1", "", "service", None, None, 0.0).unwrap().cache_key,
        None
    );
    r.cache_put("k".into(), &[], None, "v".into(), 0.0);
    assert_eq!(r.cache_get("k", None, 0.0), None);
}

#[test]
fn routing_is_reproducible_from_the_seed() {
    let run = |seed| {
        let mut r = router(
            5,
            RouterOptions {
                seed,
                ..RouterOptions::default()
            },
        );
        (0..50)
            .map(|_| first_target(&mut r, "select 1", None, 0.0))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}
