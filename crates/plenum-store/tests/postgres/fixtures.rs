//! Tables and tenants shared by the suite: A and B hold rows with identical natural keys, C is
//! empty.

use plenum_core::{TenantId, field_name, record_type};
use plenum_store::{SqlType, TableSpec, TenantPool};
use plenum_test::pg::TestDb;
use uuid::Uuid;

pub(crate) fn customers() -> TableSpec {
    TableSpec::new(record_type!("customers"))
        .column(field_name!("email"), SqlType::Text, false)
        .column(field_name!("name"), SqlType::Text, true)
        .unique(field_name!("email"))
}

pub(crate) fn orders() -> TableSpec {
    TableSpec::new(record_type!("orders"))
        .column(field_name!("customer_id"), SqlType::Uuid, false)
        .column(field_name!("note"), SqlType::Text, true)
        .index(field_name!("customer_id"))
        .foreign_key(field_name!("customer_id"), record_type!("customers"))
}

pub(crate) fn tables() -> Vec<TableSpec> {
    vec![customers(), orders()]
}

/// One tenant's fixture rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seeded {
    pub(crate) tenant: TenantId,
    pub(crate) customer: Uuid,
    pub(crate) order: Uuid,
}

pub(crate) struct World {
    pub(crate) db: TestDb,
    pub(crate) app: TenantPool,
    pub(crate) a: Seeded,
    pub(crate) b: Seeded,
    pub(crate) c: TenantId,
}

/// Same natural keys in A and B: `shared@example.com`, plus `only-b@example.com` in B.
pub(crate) async fn world() -> World {
    let db = TestDb::create(&tables()).await;
    let app = db.app(4).await;
    let a = seed(&app, &["shared@example.com"]).await;
    let b = seed(&app, &["shared@example.com", "only-b@example.com"]).await;
    let c = TenantId::generate();
    app.register_tenant(c).await.unwrap();
    World { db, app, a, b, c }
}

async fn seed(app: &TenantPool, emails: &[&str]) -> Seeded {
    let tenant = TenantId::generate();
    app.register_tenant(tenant).await.unwrap();
    let mut tx = app.begin(tenant).await.unwrap();
    let mut first = None;
    for email in emails {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, $3)")
            .bind(tenant.as_uuid())
            .bind(id)
            .bind(*email)
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        first.get_or_insert(id);
    }
    let customer = first.unwrap();
    let order = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.orders (tenant_id, id, customer_id, note) VALUES ($1, $2, $3, 'x')",
    )
    .bind(tenant.as_uuid())
    .bind(order)
    .bind(customer)
    .execute(tx.dangerous_postgres().unwrap())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Seeded {
        tenant,
        customer,
        order,
    }
}

/// The SQLSTATE of a failed statement.
pub(crate) fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other:?}"),
    }
}
