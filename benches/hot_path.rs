//! How long does the per-request work on an authenticated request take: finding the session id
//! in the Cookie header, looking the session up (with 100k sessions held, and under contention
//! from other threads), and stripping and setting identity headers?

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flowgate::config::{self, App, Upstream};
use flowgate::proxy::headers::{identity_headers, StripSet};
use flowgate::session::{self, Identity, SessionStore, SystemClock};
use std::sync::Arc;
use std::time::Duration;

fn app() -> App {
    App {
        name: "bench".into(),
        hosts: vec![],
        path_prefix: "/".into(),
        upstream: Upstream {
            url: "http://127.0.0.1:1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tls: false,
            host: "127.0.0.1".into(),
        },
        headers: config::preset("default").unwrap(),
        skip_auth: vec![],
        policies: vec![],
        policy_engine_mode: config::EngineMode::Any,
        authentication_flow: None,
        requires_flow: None,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        max_body_bytes: None,
        api_clients: None,
        jwt: None,
    }
}

fn identity() -> Arc<Identity> {
    Arc::new(Identity {
        user_id: 1,
        uid: "0123456789abcdef0123456789abcdef".into(),
        username: "alice".into(),
        email: "alice@example.test".into(),
        name: "Alice Example".into(),
        groups: vec!["admins".into(), "staff".into()],
        is_superuser: false,
    })
}

const REQUEST_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "cookie",
    "x-request-id",
    "referer",
];

fn benches(c: &mut Criterion) {
    let store = SessionStore::new(1_000_000, Duration::from_secs(3600), Arc::new(SystemClock));
    for _ in 0..100_000 {
        store.create(Some(identity()), Duration::from_secs(3600), Duration::from_secs(3600));
    }
    let s = store.create(Some(identity()), Duration::from_secs(3600), Duration::from_secs(3600));
    let cookie = format!("_ga=GA1.2.3; theme=dark; flowgate_session={}; lang=en", s.id);
    let strip = StripSet::new(&[], &[]);
    let app = app();
    let who = identity();

    c.bench_function("cookie_decode", |b| {
        b.iter(|| session::session_id_from_cookie_header(black_box(&cookie), "flowgate_session"))
    });
    c.bench_function("session_lookup_100k", |b| {
        b.iter(|| store.get(black_box(&s.id)).is_some())
    });
    c.bench_function("header_rewrite", |b| {
        b.iter(|| {
            let stripped = REQUEST_HEADERS.iter().filter(|h| strip.matches(h, false)).count();
            (stripped, identity_headers(&app.headers, &app, black_box(&who)))
        })
    });
    c.bench_function("hot_path_total", |b| {
        b.iter(|| {
            let id = session::session_id_from_cookie_header(black_box(&cookie), "flowgate_session").unwrap();
            let sess = store.get(id).unwrap();
            let who = sess.user.as_ref().unwrap();
            let stripped = REQUEST_HEADERS.iter().filter(|h| strip.matches(h, false)).count();
            (stripped, identity_headers(&app.headers, &app, who))
        })
    });

    // The same lookup while another thread hammers the store with lookups and new logins.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bg = {
        let store = store.clone();
        let stop = stop.clone();
        let id = s.id;
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.get(&id);
                n += 1;
                if n.is_multiple_of(64) {
                    store.create(Some(identity()), Duration::from_secs(3600), Duration::from_secs(3600));
                }
            }
        })
    };
    c.bench_function("session_lookup_contended", |b| {
        b.iter(|| store.get(black_box(&s.id)).is_some())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = bg.join();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
