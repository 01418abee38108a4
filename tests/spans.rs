//! Tracing through the HVAC example service over HTTP, in a process of its own (tracing caches
//! which callsites a subscriber wants process-wide, so other tests' threads must not race this
//! one's subscriber): a `plenum.request` span per request with a `plenum.operation` span per
//! library operation inside it, with tenant, request, purpose, record type, rows and outcome,
//! and never a value.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

#[path = "../examples/hvac_service/app.rs"]
#[allow(dead_code, reason = "the example's app, included whole")]
mod app;

use std::sync::{Arc, Mutex};

use plenum::core::{Actor, ActorId, ActorKind, TenantId, role};
use plenum::store::TenantPool;

/// A `Write` into a shared buffer, for a subscriber the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_and_operations_leave_spans_without_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let pool = TenantPool::sqlite(None, &plenum_hvac::tables())
        .await
        .unwrap();
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let mut sessions = app::Sessions::default();
    let office = sessions.open(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
    );
    let router = app::router(pool, sessions).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/customers"))
        .bearer_auth(&office)
        .json(
            &serde_json::json!({"name": "Ada", "email": "ada@example.com",
                                  "phone": "2175550142", "address": "1 Elm St"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let response = client
        .get(format!("{base}/customers/{id}"))
        .bearer_auth(&office)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let request = response
        .headers()
        .get(plenum_axum::REQUEST_ID_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    response.bytes().await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The read's operation span, inside its request's span, with the fields and no values.
    let read = text
        .lines()
        .find(|l| l.contains("plenum.operation") && l.contains(&request) && l.contains("\"read\""))
        .unwrap_or_else(|| panic!("no operation span for the read: {text}"));
    assert!(
        read.contains("plenum.request{"),
        "nested in the request's span: {read}"
    );
    for field in ["customers", "scheduling", "rows=1", "success"] {
        assert!(read.contains(field), "{field}: {read}");
    }
    assert!(read.contains(&tenant.to_string()), "{read}");
    assert!(
        !text.contains("ada@example.com") && !text.contains("2175550142") && !text.contains("Ada"),
        "{text}"
    );
}
