//! The HVAC example service (`examples/hvac_service/app.rs`) over real HTTP on 127.0.0.1, on
//! PostgreSQL (as the runtime role) and SQLite: a tenant's token reaches nothing of another
//! tenant through any endpoint, a route's purpose decides who may call it and what it returns,
//! an error response rolls the request's writes back, and every request's accesses are on the
//! tenant's audit log under the request id the response names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use plenum::core::{Actor, ActorId, ActorKind, Role, TenantId};
use plenum::store::AuditLog;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixtures::Env;
use crate::hvac_app::{Sessions, router};

/// The service over `env`'s pool on an ephemeral loopback port; the base URL.
async fn serve(env: &Env, sessions: Sessions) -> String {
    let app = router(env.pool.clone(), sessions).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn user(role: &str) -> Actor {
    Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(Role::new(role).unwrap())
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        request = request.bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let id = response
            .headers()
            .get(plenum_axum::REQUEST_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, id)
    }
}

fn ada() -> Value {
    json!({"name": "Ada", "email": "ada@example.com", "phone": "2175550142", "address": "1 Elm St"})
}

#[tokio::test]
async fn a_tenants_token_reaches_nothing_of_another_and_purposes_hold() {
    for env in Env::both().await {
        let name = env.name();
        let (a, b): (TenantId, TenantId) = (env.tenant().await, env.tenant().await);
        let mut sessions = Sessions::default();
        let a_office = sessions.open(a, user("office"));
        let a_marketer = sessions.open(a, user("marketer"));
        let a_privacy = sessions.open(a, user("privacy"));
        let b_office = sessions.open(b, user("office"));
        let b_marketer = sessions.open(b, user("marketer"));
        let b_privacy = sessions.open(b, user("privacy"));
        let c = Client {
            http: reqwest::Client::new(),
            base: serve(&env, sessions).await,
        };

        let (status, created, _) = c.call("POST", "/customers", &a_office, Some(ada())).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body, _) = c
            .call("GET", &format!("/customers/{id}"), &a_office, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body["email"], "ada@example.com");

        // No credential, or one the service does not know: 401 before any handler.
        for token in ["", "not-a-session"] {
            let (status, _, _) = c
                .call("GET", &format!("/customers/{id}"), token, None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        }
        // Tenant B reaches nothing of A's, through every endpoint that names a customer.
        for (path, token) in [
            (format!("/customers/{id}"), &b_office),
            (format!("/customers/{id}/export"), &b_privacy),
        ] {
            let (status, body, _) = c.call("GET", &path, token, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {path}: {body}");
        }
        let subject = created["subject"].as_str().unwrap().to_owned();
        let consent = format!("/subjects/{subject}/consent/marketing-email");
        // B's ledger is B's: a consent B records for A's customer opens nothing of A's.
        let (status, _, _) = c.call("POST", &consent, &b_marketer, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}");

        // A route's purpose decides who may call it: the marketer may not schedule.
        let (status, _, _) = c
            .call("GET", &format!("/customers/{id}"), &a_marketer, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
        // Marketing sees only consenting customers, and only in the tenant it acts in.
        let (_, listed, _) = c
            .call("GET", "/marketing/customers", &a_marketer, None)
            .await;
        assert_eq!(listed["emails"], json!([]), "{name}: no consent yet");
        let (status, _, _) = c.call("POST", &consent, &a_marketer, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}");
        let (_, listed, _) = c
            .call("GET", "/marketing/customers", &a_marketer, None)
            .await;
        assert_eq!(listed["emails"], json!(["ada@example.com"]), "{name}");
        let (_, theirs, _) = c
            .call("GET", "/marketing/customers", &b_marketer, None)
            .await;
        assert_eq!(theirs["emails"], json!([]), "{name}");

        // Properties, appointments and invoices hang off the customer, in A only.
        let (status, property, _) = c
            .call(
                "POST",
                &format!("/customers/{id}/properties"),
                &a_office,
                Some(json!({"address": "1 Elm St", "square_feet": 1850})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {property}");
        let property = property["id"].as_str().unwrap().to_owned();
        let visit = json!({"starts_at": "2026-12-03T09:00:00Z", "ends_at": "2026-12-03T11:00:00Z",
                           "notes": "gate code 4411"});
        let (status, _, _) = c
            .call(
                "POST",
                &format!("/properties/{property}/appointments"),
                &a_office,
                Some(visit.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}");
        let (status, bill, _) = c
            .call(
                "POST",
                &format!("/customers/{id}/invoices"),
                &a_office,
                Some(json!({"amount_cents": 18_900, "due_on": "2026-12-31"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {bill}");
        let bill = bill["id"].as_str().unwrap().to_owned();
        let (status, read, _) = c
            .call("GET", &format!("/invoices/{bill}"), &a_office, None)
            .await;
        assert_eq!(
            (status, read["amount_cents"].as_i64()),
            (StatusCode::OK, Some(18_900)),
            "{name}"
        );
        for (method, path, token, body) in [
            ("GET", format!("/invoices/{bill}"), &b_office, None),
            (
                "POST",
                format!("/customers/{id}/properties"),
                &b_office,
                Some(json!({"address": "x"})),
            ),
            (
                "POST",
                format!("/properties/{property}/appointments"),
                &b_office,
                Some(visit.clone()),
            ),
            (
                "POST",
                format!("/customers/{id}/invoices"),
                &b_office,
                Some(json!({"amount_cents": 1, "due_on": "2026-12-31"})),
            ),
        ] {
            let (status, body, _) = c.call(method, &path, token, body).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{name}: B {method} {path}: {body}"
            );
        }
        // Billing is a purpose of its own: the marketer may not bill.
        let (status, _, _) = c
            .call(
                "POST",
                &format!("/customers/{id}/invoices"),
                &a_marketer,
                Some(json!({"amount_cents": 1, "due_on": "2026-12-31"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");

        // The privacy officer's export of the customer opens their fields.
        let (status, export, _) = c
            .call("GET", &format!("/customers/{id}/export"), &a_privacy, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {export}");
        assert!(export.to_string().contains("ada@example.com"), "{name}");
    }
}

#[tokio::test]
async fn an_error_response_rolls_back_and_each_request_is_on_record() {
    for env in Env::both().await {
        let name = env.name();
        let a = env.tenant().await;
        let mut sessions = Sessions::default();
        let office = sessions.open(a, user("office"));
        let c = Client {
            http: reqwest::Client::new(),
            base: serve(&env, sessions).await,
        };
        let (status, body, _) = c
            .call("POST", "/customers/failing", &office, Some(ada()))
            .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        let id = body["error"]
            .as_str()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let (status, _, _) = c
            .call("GET", &format!("/customers/{id}"), &office, None)
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{name}: the failed request's write was rolled back"
        );

        let (status, created, _) = c.call("POST", "/customers", &office, Some(ada())).await;
        assert_eq!(status, StatusCode::CREATED);
        let kept = created["id"].as_str().unwrap();
        let (status, _, request) = c
            .call("GET", &format!("/customers/{kept}"), &office, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !request.is_empty(),
            "{name}: the response names its request"
        );
        let mut tx = env.pool.begin(a).await.unwrap();
        AuditLog::sequence(&mut tx).await.unwrap();
        let log = AuditLog::export(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let reads: Vec<Value> = log
            .entries
            .iter()
            .filter_map(|e| e.body.as_deref())
            .map(|b| serde_json::from_str::<Value>(b).unwrap())
            .filter(|b| b["request"] == request.as_str())
            .collect();
        assert_eq!(
            reads.len(),
            1,
            "{name}: one event for the read, under its request id"
        );
        assert_eq!(reads[0]["action"], "read");
        assert_eq!(reads[0]["record_type"], "customers");
        assert!(
            !reads[0].to_string().contains("ada@example.com"),
            "{name}: never a value"
        );
    }
}
