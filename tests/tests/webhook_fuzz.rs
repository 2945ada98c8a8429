//! Property test over request bodies: random edits of the recorded reviews (any node replaced
//! by any JSON value, or removed), random JSON, random bytes. The webhook must answer every one
//! with a 2xx or 4xx (a 200 being a well-formed AdmissionReview echoing the uid), and the
//! process must never panic: a panic hook counts panics anywhere in the test binary, where
//! the server runs in-process.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use rollout_safe_tests::fixtures::recorded_reviews;
use rollout_safe_tests::{Conn, TestServer};
use serde_json::Value;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn reviews() -> &'static [Value] {
    static R: OnceLock<Vec<Value>> = OnceLock::new();
    R.get_or_init(|| recorded_reviews().into_iter().map(|r| r.review).collect())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        // Strings that look like what the rules parse: percentages, ports, images, versions.
        prop_oneof![
            Just("25%"),
            Just("-1"),
            Just("http"),
            Just("nginx:latest"),
            Just("apps/v1"),
            Just("Deployment"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

/// A recorded review with `edits` applied: each picks a node (by index into all pointers)
/// and replaces it with a value, or removes it.
fn mutated(which: usize, edits: &[(usize, Option<Value>)]) -> Value {
    let list = reviews();
    let mut doc = list[which % list.len()].clone();
    for (pick, value) in edits {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let ptr = &all[pick % all.len()];
        match value {
            Some(v) => {
                if let Some(slot) = doc.pointer_mut(ptr) {
                    *slot = v.clone();
                }
            }
            None => {
                let (parent, key) = ptr.rsplit_once('/').unwrap_or(("", ptr));
                let key = key.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    doc
}

#[derive(Debug, Clone)]
enum Body {
    Edited(usize, Vec<(usize, Option<Value>)>),
    Json(Value),
    Bytes(Vec<u8>),
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        6 => (any::<usize>(), prop::collection::vec((any::<usize>(), prop::option::weighted(0.8, arb_json())), 1..4))
            .prop_map(|(w, e)| Body::Edited(w, e)),
        2 => arb_json().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Body::Bytes),
    ]
}

impl Body {
    fn bytes(&self) -> (Vec<u8>, Option<String>) {
        match self {
            Body::Edited(w, e) => {
                let doc = mutated(*w, e);
                let uid = doc
                    .pointer("/request/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (serde_json::to_vec(&doc).expect("json"), uid)
            }
            Body::Json(v) => (serde_json::to_vec(v).expect("json"), None),
            Body::Bytes(b) => (b.clone(), None),
        }
    }
}

#[test]
fn webhook_never_panics_on_any_body() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(TestServer::start());
    let client = server.client();
    // One keep-alive connection, replaced if it ever breaks (which itself fails the case).
    let conn: std::sync::Mutex<Option<Conn>> = std::sync::Mutex::new(None);

    let config = ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(body in arb_body(), mutate in any::<bool>())| {
        let (bytes, uid) = body.bytes();
        let path = if mutate { "/mutate" } else { "/validate" };
        let taken = conn.lock().expect("lock").take();
        let reply = rt.block_on(async {
            let mut c = match taken {
                Some(c) => c,
                None => client.connect().await.expect("connect"),
            };
            let result = c.post(path, bytes).await;
            (result, c)
        });
        let reply = match reply {
            (Ok(r), c) => {
                *conn.lock().expect("lock") = Some(c);
                Ok(r)
            }
            (Err(e), _) => Err(e),
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => panic!("no answer (connection dropped?): {e}"),
        };
        let status = reply.status.as_u16();
        prop_assert!(status == 200 || (400..500).contains(&status), "status {status}: {}", reply.text());
        if status == 200 {
            let review = reply.json();
            prop_assert_eq!(&review["kind"], "AdmissionReview");
            prop_assert!(review["response"]["allowed"].is_boolean());
            if let Some(uid) = uid {
                prop_assert_eq!(review["response"]["uid"].as_str(), Some(uid.as_str()));
            }
        } else {
            prop_assert!(reply.text().starts_with("rollout-safe: "));
        }
    });
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked while serving"
    );
    let health = rt.block_on(client.get("/healthz")).expect("still serving");
    assert_eq!(health.status, 200);
}
