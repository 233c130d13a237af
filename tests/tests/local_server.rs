//! The local server (`make dev`) serves the same router over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use eventstore_http::auth::dev::DevKey;
use eventstore_http::{local, App, AuthConfig, Mount, MAX_BODY_BYTES};
use eventstore_tests::TestStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP/1.1 request and returns (status, body).
async fn send(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    send_as(port, None, method, path, body).await
}

/// `send` with `Authorization: Bearer <token>` when a token is given.
async fn send_as(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read an oversized body.
    let _ = conn.write_all(body).await;
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// The local server on a free port, as `make dev` runs it.
struct Server {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start<P>(app: Arc<App<eventstore_dynamodb::DynamoEventLog, P>>) -> Self
    where
        P: eventstore_core::ProjectionStore + eventstore_core::SubscriptionStore + 'static,
    {
        Self::start_with(app, None).await
    }

    async fn start_with<P>(
        app: Arc<App<eventstore_dynamodb::DynamoEventLog, P>>,
        tokens: Option<DevKey>,
    ) -> Self
    where
        P: eventstore_core::ProjectionStore + eventstore_core::SubscriptionStore + 'static,
    {
        let listener = local::bind(0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(local::serve(app, listener, tokens, async {
            let _ = stopped.await;
        }));
        Self { port, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_answers_with_the_shared_router() {
    let t = TestStore::new().await;
    let app = Arc::new(App::new(t.store.clone(), Mount::All));
    let server = Server::start(app).await;
    let port = server.port;

    let (status, body) = send(
        port,
        "POST",
        "/streams/Local-1/events",
        br#"{"events":[{"eventType":"Started","data":{"n":1}}]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(port, "GET", "/streams/Local-1", b"").await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"streamId":"Local-1","category":"Local","version":1}"#
        )
    );
    let (status, body) = send(port, "GET", "/nowhere", b"").await;
    assert_eq!(status, 404);
    assert!(body.contains(r#""code":"NotFound""#), "{body}");

    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, body) = send(port, "POST", "/streams/Local-1/events", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        t.raw_items(&eventstore_core::StreamId::parse("Local-1", "s").unwrap())
            .await
            .len(),
        1
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_to_the_local_server_show_up_in_all_once_sequenced() {
    let t = TestStore::new().await;
    let app = Arc::new(App::new(t.store.clone(), Mount::All));
    let sequencer = local::spawn_sequencer(t.sequencer().await);
    let server = Server::start(app).await;
    let port = server.port;

    let (status, body) = send(
        port,
        "POST",
        "/streams/Local-2/events",
        br#"{"events":[{"eventType":"Started","data":{"n":1}},{"eventType":"Stopped","data":{}}]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The poller runs in the background; give it up to 30 s (it usually needs well under one).
    let mut page = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, body) = send(port, "GET", "/all/events", b"").await;
        assert_eq!(status, 200, "{body}");
        page = serde_json::from_str(&body).unwrap();
        if page["events"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<(serde_json::Value, serde_json::Value)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["eventType"].clone(), e["globalPosition"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (serde_json::json!("Started"), serde_json::json!(1)),
            (serde_json::json!("Stopped"), serde_json::json!(2)),
        ]
    );
    assert_eq!(page["next"], 3);

    sequencer.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_shows_up_in_account_balances_through_the_local_pollers() {
    let t = TestStore::new().await;
    let projector = t.projector(eventstore_app::registry().projections).await;
    let app = Arc::new(App::new(t.store.clone(), Mount::All).with_projector(projector.clone()));
    let sequencer = local::spawn_sequencer(t.sequencer().await);
    let projecting = local::spawn_projector(
        projector,
        eventstore_dynamodb::trigger::projector::LOCAL_CATCH_UP_EVERY,
    );
    let server = Server::start(app).await;
    let port = server.port;

    let (status, body) = send(
        port,
        "POST",
        "/streams/Account-L/events",
        br#"{"events":[{"eventType":"AccountOpened","data":{"initialDeposit":10}},{"eventType":"MoneyDeposited","data":{"amount":32}}]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Sequencer and projector run in the background; give them up to 30 s.
    let mut row = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, body) = send(port, "GET", "/projections/account-balances/L", b"").await;
        if status == 200 {
            row = serde_json::from_str(&body).unwrap();
            break;
        }
        assert_eq!(status, 404, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(row["value"]["balance"], 42, "{row}");
    assert_eq!(row["value"]["transactionCount"], 2, "{row}");

    sequencer.abort();
    projecting.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_development_key_the_local_server_authorizes_as_api_gateway_and_the_functions_do() {
    let t = TestStore::new().await;
    let app =
        App::new(t.store.clone(), Mount::All).with_authorization(AuthConfig::jwt(Some("tenant")));
    let key = DevKey::new("local-test-key");
    let server = Server::start_with(Arc::new(app), Some(key.clone())).await;
    let port = server.port;
    let hour = std::time::Duration::from_secs(3600);
    let token = |key: &DevKey, scope: &str, tenant: &str| {
        key.mint(
            "dev",
            &[format!("eventstore/{scope}")],
            &[("tenant".to_owned(), tenant.to_owned())],
            hour,
        )
        .unwrap()
    };
    let append = br#"{"events":[{"eventType":"acme.Opened","data":{"n":1}}]}"#;

    let (status, body) = send(port, "POST", "/streams/acme.Local-1/events", append).await;
    assert_eq!(status, 401, "no token: {body}");
    let forged = token(&DevKey::new("another-key"), "events.append", "acme");
    let (status, _) = send_as(
        port,
        Some(&forged),
        "POST",
        "/streams/acme.Local-1/events",
        append,
    )
    .await;
    assert_eq!(status, 401, "a token signed with another key");
    let reader = token(&key, "events.read", "acme");
    let (status, _) = send_as(
        port,
        Some(&reader),
        "POST",
        "/streams/acme.Local-1/events",
        append,
    )
    .await;
    assert_eq!(status, 403, "a reader appending");
    let globex = token(&key, "events.append", "globex");
    let (status, _) = send_as(
        port,
        Some(&globex),
        "POST",
        "/streams/acme.Local-1/events",
        append,
    )
    .await;
    assert_eq!(status, 403, "another tenant appending");
    let stream = eventstore_core::StreamId::parse("acme.Local-1", "s").unwrap();
    assert!(
        t.raw_items(&stream).await.is_empty(),
        "refused appends wrote nothing"
    );

    let writer = token(&key, "events.append", "acme");
    let (status, body) = send_as(
        port,
        Some(&writer),
        "POST",
        "/streams/acme.Local-1/events",
        append,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send_as(port, Some(&reader), "GET", "/streams/acme.Local-1", b"").await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"streamId":"acme.Local-1","category":"acme.Local","version":1}"#
        )
    );
    let globex_reader = token(&key, "events.read", "globex");
    let (status, body) = send_as(
        port,
        Some(&globex_reader),
        "GET",
        "/streams/acme.Local-1",
        b"",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("StreamNotFound"), "{body}");

    server.stop().await;
}
