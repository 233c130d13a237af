//! The operator commands: `eventstore repair` and `eventstore rebuild`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::{AppendBatch, ExpectedVersion};
use eventstore_tests::{assert_dense_and_in_stream_order, event, stream, TestStore};

async fn append(t: &TestStore, category: &str, n: usize) {
    let events = (0..n).map(|i| event(&format!("E{i}"), "{}")).collect();
    t.store
        .append(
            &stream(category),
            ExpectedVersion::Any,
            &AppendBatch::new(events).unwrap(),
        )
        .await
        .unwrap();
}

fn run(table: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
        .args(["--table", table])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `eventstore --table <table> <args>` with the projection tables `TestStore::projector`
/// creates (`rows` overrides the projections table): (success, stdout, stderr).
fn cli_on(table: &str, rows: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
        .args(["--table", table])
        .args(args)
        .env(
            "PROJECTIONS_TABLE",
            rows.map_or_else(|| format!("{table}-rows"), str::to_owned),
        )
        .env("CHECKPOINTS_TABLE", format!("{table}-checkpoints"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn repair_sequences_what_the_sequencer_missed_and_nothing_twice() {
    let t = TestStore::new().await;
    append(&t, "Order", 3).await;
    append(&t, "Cart", 1).await;
    t.sequence_all().await;
    // The sequencer is down for these, and their stream records are gone.
    append(&t, "Order", 2).await;
    append(&t, "Cart", 60).await;
    append(&t, "Order", 1).await;
    let before = t.positions().await;
    assert_eq!(before.iter().filter(|p| p.2.is_none()).count(), 63);

    let (ok, stdout) = run(&t.table, &["repair", "--dry-run"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("3 streams have events without a position"),
        "{stdout}"
    );
    assert_eq!(t.positions().await, before);

    let (ok, stdout) = run(&t.table, &["repair"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("sequenced 63 events in 3 streams"),
        "{stdout}"
    );
    let after = t.positions().await;
    assert_dense_and_in_stream_order(&after);
    // What was sequenced before keeps its position.
    for (old, new) in before.iter().zip(&after) {
        if old.2.is_some() {
            assert_eq!(old, new);
        }
    }

    let (ok, stdout) = run(&t.table, &["repair"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("0 streams have events without a position"),
        "{stdout}"
    );
    assert_eq!(t.positions().await, after);
}

#[test]
fn repair_against_a_missing_table_fails_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
        .args(["--table", "no-such-table", "repair"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("eventstore: "), "{stderr}");
}

#[tokio::test]
async fn rebuild_replays_a_projection_into_a_new_generation() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Account-cli",
        vec![
            event("AccountOpened", r#"{"initialDeposit":5}"#),
            // Schema 1, as the app's upcasters know it: `value`, read as `amount`.
            event("MoneyDeposited", r#"{"value":7}"#),
        ],
    )
    .await;
    let projector = t.projector(eventstore_app::registry().projections).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
        .args(["--table", &t.table, "rebuild", "account-balances"])
        .env("PROJECTIONS_TABLE", format!("{}-rows", t.table))
        .env("CHECKPOINTS_TABLE", format!("{}-checkpoints", t.table))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("account-balances: generation 2 live at position 2"),
        "{stdout}"
    );
    let (rows, _) = projector
        .rows("account-balances", "cli", None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].1["balance"], serde_json::json!(12));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
        .args(["--table", &t.table, "rebuild", "nothing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no projection nothing"));
}

#[tokio::test]
async fn stream_and_tail_print_what_the_api_would_return() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Order-7",
        vec![event("Placed", r#"{"n":1}"#), event("Paid", r#"{"n":2}"#)],
    )
    .await;
    t.append_sequenced("Cart-1", vec![event("Placed", r#"{"n":3}"#)])
        .await;

    let (ok, stdout) = run(&t.table, &["stream", "Order-7"]);
    assert!(ok, "{stdout}");
    assert_eq!(
        stdout,
        "Order-7 (category Order) at version 2\n#1 Order-7 v1 Placed {\"n\":1}\n#2 Order-7 v2 Paid {\"n\":2}\n"
    );
    let (ok, stdout) = run(&t.table, &["stream", "Order-7", "--json"]);
    assert!(ok, "{stdout}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"streamId": "Order-7", "category": "Order", "version": 2})
    );
    assert_eq!(lines[2]["eventType"], "Paid");
    assert_eq!(lines[2]["globalPosition"], 2);

    let (ok, stdout) = run(&t.table, &["tail", "--from", "2"]);
    assert!(ok, "{stdout}");
    assert_eq!(
        stdout,
        "#2 Order-7 v2 Paid {\"n\":2}\n#3 Cart-1 v1 Placed {\"n\":3}\n"
    );
    let (ok, stdout) = run(&t.table, &["tail", "--type", "Placed", "--json"]);
    assert!(ok, "{stdout}");
    let positions: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["globalPosition"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, [1, 3]);
    let (ok, stdout) = run(&t.table, &["tail", "--category", "Cart"]);
    assert!(ok, "{stdout}");
    assert_eq!(stdout, "#3 Cart-1 v1 Placed {\"n\":3}\n");

    let (ok, _) = run(&t.table, &["stream", "Nope-1"]);
    assert!(!ok, "a missing stream is an error");
    let (ok, _) = run(&t.table, &["tail", "--category", "a-b"]);
    assert!(!ok, "a bad category is an error");
}

#[tokio::test]
async fn sweep_replays_the_batches_the_stream_path_gave_up_on() {
    let t = TestStore::new().await;
    append(&t, "Order", 3).await;
    append(&t, "Cart", 2).await;
    let queue = t.failed_batches().await;
    let sweep = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
            .args(["--table", &t.table, "sweep"])
            .env("SEQUENCER_FAILURES_QUEUE_URL", queue.queue_url())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, stdout) = sweep();
    assert!(ok, "{stdout}");
    assert_eq!(
        stdout,
        "replayed 0 failed batches (0 unreplayable): 0 streams, 0 events sequenced\n"
    );
    // The mapping gave up on the batch of all five inserts.
    queue
        .send(&t.failed_batch_of_every_insert().await)
        .await
        .unwrap();
    let (ok, stdout) = sweep();
    assert!(ok, "{stdout}");
    assert_eq!(
        stdout,
        "replayed 1 failed batches (0 unreplayable): 2 streams, 5 events sequenced\n"
    );
    assert_dense_and_in_stream_order(&t.positions().await);
    assert_eq!(t.positions().await.len(), 5);
}

#[tokio::test]
async fn projections_and_parked_show_checkpoints_lag_and_parked_events() {
    let t = TestStore::new().await;
    // A deposit to an account never opened: account-balances parks it.
    t.append_sequenced(
        "Account-nobody",
        vec![event("MoneyDeposited", r#"{"value":7}"#)],
    )
    .await;
    let projector = t.projector(eventstore_app::registry().projections).await;
    // Refused on three triggers, then parked.
    for _ in 0..3 {
        projector.catch_up_all(None).await.unwrap();
    }
    t.append_sequenced("Order-1", vec![event("Placed", "{}")])
        .await;
    let cli = |args: &[&str]| {
        let (ok, stdout, _) = cli_on(&t.table, None, args);
        (ok, stdout)
    };
    let (ok, stdout) = cli(&["projections"]);
    assert!(ok, "{stdout}");
    assert_eq!(
        stdout,
        "account-balances: checkpoint 1 of head 2 (lag 1), generation 1, 1 parked\ncategory-streams: checkpoint 1 of head 2 (lag 1), generation 1, 0 parked\n"
    );
    let (ok, stdout) = cli(&["parked", "account-balances", "--json"]);
    assert!(ok, "{stdout}");
    let parked: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(parked["position"], 1);
    assert!(!parked["error"].as_str().unwrap().is_empty(), "{parked}");
    let (ok, _) = cli(&["parked", "nothing"]);
    assert!(!ok);
}

#[tokio::test]
async fn replay_applies_a_parked_event_after_the_fix_and_takes_it_off_the_list() {
    let t = TestStore::new().await;
    // A deposit (schema 1) to an account not opened yet: account-balances parks it.
    t.append_sequenced(
        "Account-late",
        vec![event("MoneyDeposited", r#"{"value":7}"#)],
    )
    .await;
    let projector = t.projector(eventstore_app::registry().projections).await;
    for _ in 0..3 {
        projector.catch_up_all(None).await.unwrap();
    }
    assert_eq!(
        projector
            .checkpoint("account-balances")
            .await
            .unwrap()
            .parked,
        1
    );
    // The fix: the account is opened after all.
    t.store
        .append(
            &eventstore_core::StreamId::parse("Account-late", "streamId").unwrap(),
            ExpectedVersion::Exact(1),
            &AppendBatch::new(vec![event("AccountOpened", r#"{"initialDeposit":5}"#)]).unwrap(),
        )
        .await
        .unwrap();
    t.sequence_all().await;
    projector.catch_up_all(None).await.unwrap();
    let cli = |args: &[&str]| cli_on(&t.table, None, args);
    let (ok, stdout, stderr) = cli(&["replay", "account-balances"]);
    assert!(ok, "{stdout} {stderr}");
    assert_eq!(stdout, "#1 replayed\n");
    let (rows, _) = projector
        .rows("account-balances", "late", None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].1["balance"], serde_json::json!(12));
    assert_eq!(rows[0].1["transactionCount"], serde_json::json!(2));
    let checkpoint = projector.checkpoint("account-balances").await.unwrap();
    assert_eq!((checkpoint.position, checkpoint.parked), (2, 0));
    // Nothing is left to replay, and asking for it says so.
    let (ok, _, stderr) = cli(&["replay", "account-balances", "--position", "1"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "eventstore: account-balances has no parked event at position 1\n"
    );
}

#[tokio::test]
async fn check_reads_the_tables_and_says_what_is_wrong() {
    let t = TestStore::new().await;
    let _projector = t.projector(vec![]).await;
    let check = |rows: &str| cli_on(&t.table, Some(rows), &["check"]);
    let table = &t.table;
    let expected = |protection: &str, pitr: &str, rows: &str| {
        format!(
            "ok   events table: {table} is ACTIVE
ok   events stream: enabled, NEW_IMAGE
ok   index GlobalOrder: ACTIVE
{protection}
{pitr}
{rows}
ok   checkpoints table: {table}-checkpoints is ACTIVE
"
        )
    };
    // As the local DynamoDB creates it, with a projections table that is not there.
    let (ok, stdout, stderr) = check("no-such-table");
    assert!(!ok);
    assert_eq!(
        stdout,
        expected(
            "FAIL deletion protection: off: turn it on (the template does); the table holds the only copy of the events",
            "FAIL point-in-time recovery: off: turn it on (the template does); it is how a bad write is undone",
            "FAIL projections table: no-such-table is missing or not ACTIVE: check PROJECTIONS_TABLE and CHECKPOINTS_TABLE",
        )
    );
    assert_eq!(stderr, "eventstore: 3 of 7 checks failed\n");

    // As the template deploys it: nothing wrong.
    t.client
        .update_table()
        .table_name(table)
        .deletion_protection_enabled(true)
        .send()
        .await
        .unwrap();
    t.client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (ok, stdout, stderr) = check(&format!("{table}-rows"));
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        expected(
            "ok   deletion protection: on",
            "ok   point-in-time recovery: on",
            &format!("ok   projections table: {table}-rows is ACTIVE"),
        )
    );
    // Deletion protection would outlive the test: off again, so the table can go.
    t.client
        .update_table()
        .table_name(table)
        .deletion_protection_enabled(false)
        .send()
        .await
        .unwrap();
}

#[test]
fn dev_token_mints_what_the_local_server_accepts_and_refuses_unknown_scopes() {
    let mint = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_eventstore"))
            .arg("dev-token")
            .args(args)
            .env("EVENTSTORE_DEV_KEY", "cli-test-key")
            .env("AUTH_SCOPE_PREFIX", "api/")
            .env_remove("AUTH_MODE")
            .env_remove("AUTH_TENANT_CLAIM")
            .output()
            .unwrap()
    };
    let out = mint(&[
        "--scope",
        "events.read,admin",
        "--tenant",
        "acme",
        "--tenant-claim",
        "custom:tenant",
        "--subject",
        "ops",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = eventstore_http::auth::dev::DevKey::new("cli-test-key")
        .verify(token.trim())
        .unwrap();
    assert_eq!(claims["scope"], "api/events.read api/admin");
    assert_eq!(claims["custom:tenant"], "acme");
    assert_eq!(claims["sub"], "ops");

    let out = mint(&["--scope", "events.write"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown scope \"events.write\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mint(&["--scope", "events.read", "--tenant", "acme"]);
    assert!(!out.status.success(), "a tenant without the claim's name");
    let out = mint(&[
        "--scope",
        "events.read",
        "--tenant",
        "a.b",
        "--tenant-claim",
        "t",
    ]);
    assert!(!out.status.success(), "a tenant id with a dot");
}

/// `check --function --failure-queue`: a stream consumer needs an enabled mapping on the
/// events table's stream, and a failure queue must be empty.
#[tokio::test]
async fn check_reads_the_stream_consumers_mappings_and_the_failure_queues() {
    let t = TestStore::new().await;
    let _projector = t.projector(vec![]).await;
    let config = eventstore_tests::sdk_config().await;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = |name: String| {
        let sqs = sqs.clone();
        async move {
            let out = sqs.create_queue().queue_name(name).send().await.unwrap();
            out.queue_url().unwrap().to_owned()
        }
    };
    let empty = queue(format!("empty-{run_id}")).await;
    let full = queue(format!("full-{run_id}")).await;
    sqs.send_message()
        .queue_url(&full)
        .message_body(r#"{"requestContext":{"condition":"RetryAttemptsExhausted"}}"#)
        .send()
        .await
        .unwrap();

    let role = aws_sdk_iam::Client::new(&config)
        .create_role()
        .role_name(format!("consumer-{run_id}"))
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_owned();
    let lambda = aws_sdk_lambda::Client::new(&config);
    // An empty zip archive: the function is never invoked.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    let (mapped, orphan) = (format!("sequencer-{run_id}"), format!("orphan-{run_id}"));
    for name in [&mapped, &orphan] {
        lambda
            .create_function()
            .function_name(name)
            .role(&role)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(zip.clone()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let stream_arn = t
        .client
        .describe_table()
        .table_name(&t.table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_owned();
    // Nothing is written to the table after this: moto would try to invoke the function.
    lambda
        .create_event_source_mapping()
        .function_name(&mapped)
        .event_source_arn(&stream_arn)
        .starting_position(aws_sdk_lambda::types::EventSourcePosition::TrimHorizon)
        .send()
        .await
        .unwrap();

    let (ok, stdout, stderr) = cli_on(
        &t.table,
        None,
        &[
            "check",
            "--function",
            &mapped,
            "--function",
            &orphan,
            "--failure-queue",
            &empty,
            "--failure-queue",
            &full,
        ],
    );
    assert!(!ok);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" function ") || l.contains(" failure queue "))
        .collect();
    assert_eq!(
        lines,
        [
            format!("ok   function {mapped}: mapping Enabled on the events stream; last result: none yet"),
            format!("FAIL function {orphan}: no event source mapping on the events table's stream ({stream_arn}): it receives no records; redeploy the template"),
            format!("ok   failure queue {empty}: empty"),
            format!("FAIL failure queue {full}: 1 batches given up: find the cause (docs/runbook.md, Failure queues), then purge it"),
        ],
        "{stdout}{stderr}"
    );
}
