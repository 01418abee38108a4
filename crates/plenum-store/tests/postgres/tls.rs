//! TLS to PostgreSQL: verify-full against the local server's certificate (Debian's snakeoil
//! certificate, issued to `localhost`), a wrong trust root refused, and a remote host refused
//! before anything is sent unless the connection verifies the server fully.

use std::path::PathBuf;

use plenum_store::postgres::TlsMode;
use plenum_store::{ErrorKind, TenantPool};

use crate::fixtures::world;

/// The certificate the Debian cluster serves (self-signed, `CN = localhost`).
const SERVER_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[tokio::test]
async fn verify_full_to_the_local_server_encrypts_and_checks_its_name() {
    let w = world().await;
    let url =
        w.db.url(&w.db.roles.app())
            .replace("127.0.0.1", "localhost");
    let mut config = w.db.pool_config(1);
    config.tls = TlsMode::VerifyFull {
        root: Some(PathBuf::from(SERVER_CERT)),
    };
    let pool = TenantPool::connect_postgres(&url, &config).await.unwrap();
    let mut tx = pool.begin(w.a.tenant).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");

    // The same server under a name its certificate does not carry (`127.0.0.1` is not
    // `localhost`): refused when connecting.
    let refused = match TenantPool::connect_postgres(&w.db.url(&w.db.roles.app()), &config).await {
        Err(_) => true,
        Ok(pool) => pool.begin(w.a.tenant).await.is_err(),
    };
    assert!(refused, "the host name was not checked");
}

#[tokio::test]
async fn a_wrong_trust_root_is_refused() {
    let w = world().await;
    let url =
        w.db.url(&w.db.roles.app())
            .replace("127.0.0.1", "localhost");
    // A trust root that did not issue the server's certificate: a generated one.
    let dir = std::env::temp_dir().join(format!("plenum-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("other-root.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(dir.join("other-root.key"))
        .arg("-out")
        .arg(&root)
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl: {made:?}");
    let mut config = w.db.pool_config(1);
    config.tls = TlsMode::VerifyFull { root: Some(root) };
    let refused = match TenantPool::connect_postgres(&url, &config).await {
        Err(_) => true,
        Ok(pool) => pool.begin(w.a.tenant).await.is_err(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        refused,
        "a server certificate from another root was accepted"
    );
}

#[tokio::test]
async fn a_remote_host_without_verify_full_is_refused_before_connecting() {
    let w = world().await;
    for tls in [
        TlsMode::FromUrl,
        TlsMode::Require,
        TlsMode::VerifyCa { root: None },
    ] {
        let mut config = w.db.pool_config(1);
        config.tls = tls.clone();
        // A reserved name that resolves nowhere: the refusal must come before any lookup.
        let err = TenantPool::connect_postgres("postgres://app@db.example.invalid:5432/x", &config)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{tls:?}");
        assert!(err.to_string().contains("VerifyFull"), "{err}");
    }
}
