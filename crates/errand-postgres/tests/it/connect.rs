//! Bad URLs, refused credentials, missing databases and unreachable servers
//! each fail with one clear line naming what is wrong.

use std::time::Duration;

use errand_core::StoreError;
use errand_postgres::{PostgresConfig, PostgresStore};

use crate::support;

/// Opens `config`, which must fail, and returns the error.
async fn open_error(config: PostgresConfig) -> StoreError {
    match PostgresStore::open(config).await {
        Err(e) => e,
        Ok(_) => panic!("opening should have failed"),
    }
}

/// Checks an error message is one clear line, and returns it.
fn one_line(msg: String) -> String {
    assert!(!msg.contains('\n'), "not one line: {msg:?}");
    assert!(msg.len() < 300, "too long for one clear line: {msg:?}");
    msg
}

/// Opens `config` and returns the connect error's message, checking it is one line.
async fn connect_error(config: PostgresConfig) -> String {
    match open_error(config).await {
        StoreError::Connect(msg) => one_line(msg.to_string()),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// Opens `config` and returns the message of its configuration error (no
/// connection is tried), checking it is one line.
async fn config_error(config: PostgresConfig) -> String {
    match open_error(config).await {
        StoreError::InvalidConfig(msg) => one_line(msg),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// The test URL with its user, port or database replaced.
fn variant(url: &str, user: Option<&str>, port: Option<u16>, db: Option<&str>) -> String {
    let opts: errand_postgres::sqlx::postgres::PgConnectOptions = url.parse().expect("test URL parses");
    format!(
        "postgres://{}@{}:{}/{}",
        user.unwrap_or(opts.get_username()),
        opts.get_host(),
        port.unwrap_or(opts.get_port()),
        db.unwrap_or(opts.get_database().unwrap_or("postgres")),
    )
}

#[tokio::test]
async fn malformed_urls_are_refused_without_echoing_the_password() {
    for (url, says) in [
        (
            "postgres://bob:hunter2@localhost:notaport/db",
            "invalid PostgreSQL URL",
        ),
        ("mysql://bob:hunter2@localhost/db", "must start with postgres://"),
        ("localhost:5432", "must start with postgres://"),
        ("", "must start with postgres://"),
    ] {
        let msg = config_error(PostgresConfig::from_url(url)).await;
        assert!(msg.contains(says), "{url}: {msg}");
        assert!(!msg.contains("hunter2"), "{url}: the password leaked: {msg}");
    }
}

#[tokio::test]
async fn an_invalid_schema_name_is_refused_before_connecting() {
    let msg =
        config_error(PostgresConfig::from_url("postgres://nobody@127.0.0.1:1/x").schema("Bad-Name")).await;
    assert!(msg.contains("invalid schema name \"Bad-Name\""), "{msg}");
}

#[tokio::test]
async fn an_unknown_user_is_named() {
    let Some(url) = support::url() else { return };
    let msg = connect_error(PostgresConfig::from_url(variant(
        &url,
        Some("errand_no_such_user"),
        None,
        None,
    )))
    .await;
    assert!(msg.contains("errand_no_such_user"), "{msg}");
    assert!(
        msg.contains("authentication refused") || msg.contains("does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let Some(url) = support::url() else { return };
    let msg = connect_error(PostgresConfig::from_url(variant(
        &url,
        None,
        None,
        Some("errand_no_such_db"),
    )))
    .await;
    assert!(
        msg.contains("database \"errand_no_such_db\" does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_refused_connection_keeps_its_sqlstate_and_the_drivers_error() {
    let Some(url) = support::url() else { return };
    let e = open_error(PostgresConfig::from_url(variant(
        &url,
        None,
        None,
        Some("errand_no_such_db"),
    )))
    .await;
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.code(), errand_core::ErrorCode::StoreUnavailable);
    // invalid_catalog_name
    assert_eq!(e.db_code(), Some(&errand_core::DbCode::SqlState("3D000".into())));
    let source = std::error::Error::source(&e).expect("the store error keeps its source");
    let pg = source
        .downcast_ref::<errand_postgres::PostgresError>()
        .expect("the source is the store's own error");
    assert!(
        matches!(pg, errand_postgres::PostgresError::Connect { .. }),
        "{pg:?}"
    );
    let driver = std::error::Error::source(pg).expect("the driver's error");
    assert!(
        driver.downcast_ref::<errand_postgres::sqlx::Error>().is_some(),
        "{driver:?}"
    );
}

#[tokio::test]
async fn a_closed_port_says_connection_refused() {
    // Port 1 on the loopback interface: nothing listens there.
    let config = PostgresConfig::from_url("postgres://errand:secret@127.0.0.1:1/db");
    let msg = connect_error(config).await;
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("connection refused"),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
}

#[tokio::test]
async fn a_silent_host_times_out_with_a_message() {
    // A listener that accepts TCP but never speaks the protocol.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let config = PostgresConfig::from_url(format!("postgres://errand@127.0.0.1:{port}/db"))
        .connect_timeout(Duration::from_millis(300));
    let msg = connect_error(config).await;
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("no answer within 300 ms"),
        "{msg}"
    );
    hold.abort();
}

#[tokio::test]
async fn a_server_that_is_not_postgres_is_named_without_driver_noise() {
    // Something else listens there: it answers like a web server.
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = http.local_addr().unwrap().port();
    let serve = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut sock, _)) = http.accept().await {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let msg = connect_error(PostgresConfig::from_url(format!(
        "postgres://errand@127.0.0.1:{port}/db"
    )))
    .await;
    // Without TLS the start-up message goes first and the other server hangs
    // up on it; with TLS its answer to the TLS request is not one PostgreSQL
    // gives. Either way the message says what is wrong.
    assert!(
        msg.contains("does not speak the PostgreSQL protocol") || msg.contains("is it a PostgreSQL server?"),
        "{msg}"
    );
    assert!(!msg.contains("sqlx"), "driver internals leaked: {msg}");
    // Asked to try TLS first, the client reads the other server's answer to
    // that request.
    let msg = connect_error(PostgresConfig::from_url(format!(
        "postgres://errand@127.0.0.1:{port}/db?sslmode=prefer"
    )))
    .await;
    assert!(msg.contains("does not speak the PostgreSQL protocol"), "{msg}");
    assert!(!msg.contains("sqlx"), "driver internals leaked: {msg}");
    serve.abort();
}

#[tokio::test]
async fn pooled_connections_carry_the_configured_timeout_and_name() {
    let Some(config) = support::config().await else {
        return;
    };
    let schema = config.schema_name().to_owned();
    let store = support::open(
        config
            .statement_timeout(Some(Duration::from_millis(1500)))
            .application_name("errand-conn-test"),
    )
    .await;
    let (timeout, name): (String, String) = errand_postgres::sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('application_name')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((timeout.as_str(), name.as_str()), ("1500ms", "errand-conn-test"));
    support::drop_schema(&schema).await;
}

#[tokio::test]
async fn the_stores_connections_use_generic_plans() {
    let Some(store) = support::store().await else {
        return;
    };
    let mode: String = errand_postgres::sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(store.pool())
        .await
        .expect("SHOW plan_cache_mode");
    assert_eq!(mode, "force_generic_plan");
    let schema = store.schema().to_owned();
    store.close().await;
    support::drop_schema(&schema).await;
}
