//! The deployable stack and the local set-up must describe the same table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_dynamodb::{events_table_shape, IndexShape, TableShape};
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = format!("{}/../infra/template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a plain string, got {v:?}"))
        .to_owned()
}

fn pairs(list: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    list.as_sequence()
        .unwrap()
        .iter()
        .map(|e| (text(&e[a]), text(&e[b])))
        .collect()
}

/// The parsed filter patterns of an event source's properties.
fn filter_patterns(properties: &Value) -> Vec<serde_json::Value> {
    properties["FilterCriteria"]["Filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_str(&text(&f["Pattern"])).unwrap())
        .collect()
}

#[test]
fn table_definition_matches_the_sam_template() {
    let t = template();
    let table = &t["Resources"]["EventsTable"];
    assert_eq!(text(&table["Type"]), "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    let declared = TableShape {
        attributes: pairs(&p["AttributeDefinitions"], "AttributeName", "AttributeType"),
        key: pairs(&p["KeySchema"], "AttributeName", "KeyType"),
        indexes: p["GlobalSecondaryIndexes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|i| IndexShape {
                name: text(&i["IndexName"]),
                key: pairs(&i["KeySchema"], "AttributeName", "KeyType"),
                projection: text(&i["Projection"]["ProjectionType"]),
            })
            .collect(),
        billing_mode: text(&p["BillingMode"]),
        stream_view_type: text(&p["StreamSpecification"]["StreamViewType"]),
    };
    assert_eq!(declared, events_table_shape());
    // Things only the deployed table has, which the events must never lose.
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        Value::Bool(true)
    );
    assert_eq!(text(&table["DeletionPolicy"]), "Retain");
}

#[test]
fn every_contract_route_is_declared_and_goes_to_the_right_function() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut routes: Vec<(String, String)> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::ApiGatewayV2::Route"))
        .map(|r| {
            let target = match &r["Properties"]["Target"] {
                Value::Tagged(tagged) => text(&tagged.value),
                other => text(other),
            };
            (text(&r["Properties"]["RouteKey"]), target)
        })
        .collect();
    routes.sort();
    let want = [
        ("$default", "integrations/${ReadIntegration}"),
        ("GET /all/events", "integrations/${ReadIntegration}"),
        (
            "GET /categories/{category}/events",
            "integrations/${ReadIntegration}",
        ),
        ("GET /streams/{streamId}", "integrations/${ReadIntegration}"),
        (
            "GET /streams/{streamId}/snapshot",
            "integrations/${ReadIntegration}",
        ),
        (
            "GET /streams/{streamId}/events",
            "integrations/${ReadIntegration}",
        ),
        (
            "GET /types/{eventType}/events",
            "integrations/${ReadIntegration}",
        ),
        (
            "POST /streams/{streamId}/events",
            "integrations/${AppendIntegration}",
        ),
        (
            "PUT /streams/{streamId}/snapshot",
            "integrations/${AppendIntegration}",
        ),
        ("GET /projections/{name}", "integrations/${ReadIntegration}"),
        (
            "GET /projections/{name}/{key}",
            "integrations/${ReadIntegration}",
        ),
        (
            "GET /subscriptions/{name}",
            "integrations/${ReadIntegration}",
        ),
        (
            "PUT /subscriptions/{name}",
            "integrations/${AppendIntegration}",
        ),
    ];
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    want.sort();
    assert_eq!(routes, want);
    let functions: Vec<String> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|r| text(&r["Metadata"]["BuildMethod"]))
        .collect();
    // append-api, read-api, sequencer, projector, publisher.
    assert_eq!(functions, ["rust-cargolambda"; 5]);
}

#[test]
fn the_sequencer_is_fed_like_the_local_event_source_feeds_it() {
    let t = template();
    let function = &t["Resources"]["SequencerFunction"];
    assert_eq!(
        text(&function["Properties"]["CodeUri"]),
        "../functions/sequencer"
    );
    let source = &function["Properties"]["Events"]["EventInserts"];
    assert_eq!(text(&source["Type"]), "DynamoDB");
    let p = &source["Properties"];
    let patterns = filter_patterns(p);
    let local: serde_json::Value =
        serde_json::from_str(eventstore_dynamodb::trigger::EVENT_INSERTS_FILTER).unwrap();
    assert_eq!(patterns, vec![local]);
    assert_eq!(p["BatchSize"], Value::from(1000));
    assert_eq!(
        p["BatchSize"].as_i64().unwrap(),
        i64::from(eventstore_dynamodb::trigger::local::SEQUENCER_BATCH_SIZE)
    );
    assert_eq!(text(&p["StartingPosition"]), "TRIM_HORIZON");
    assert_eq!(p["ParallelizationFactor"], Value::from(1));
    assert_eq!(p["MaximumRetryAttempts"], Value::from(10));
    assert_eq!(
        p["FunctionResponseTypes"],
        serde_yaml_ng::from_str::<Value>("[ReportBatchItemFailures]").unwrap()
    );
    assert_eq!(text(&p["DestinationConfig"]["OnFailure"]["Type"]), "SQS");
    assert_eq!(
        text(&t["Resources"]["SequencerFailures"]["Type"]),
        "AWS::SQS::Queue"
    );
}

#[tokio::test]
async fn the_created_table_has_exactly_that_shape() {
    let t = eventstore_tests::TestStore::new().await;
    let table = t
        .client
        .describe_table()
        .table_name(&t.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let key = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        k.iter()
            .map(|e| {
                (
                    e.attribute_name().to_owned(),
                    e.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let mut attributes: Vec<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    let mut want = events_table_shape();
    attributes.sort();
    want.attributes.sort();
    let described = TableShape {
        attributes,
        key: key(table.key_schema()),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|i| IndexShape {
                name: i.index_name().unwrap().to_owned(),
                key: key(i.key_schema()),
                projection: i
                    .projection()
                    .unwrap()
                    .projection_type()
                    .unwrap()
                    .as_str()
                    .to_owned(),
            })
            .collect(),
        billing_mode: table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .unwrap()
            .as_str()
            .to_owned(),
        stream_view_type: table
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .unwrap()
            .as_str()
            .to_owned(),
    };
    assert_eq!(described, want);
}

#[test]
fn the_projector_is_fed_by_the_counter_records_like_the_local_source_feeds_it() {
    let t = template();
    let function = &t["Resources"]["ProjectorFunction"];
    assert_eq!(
        text(&function["Properties"]["CodeUri"]),
        "../functions/projector"
    );
    let p = &function["Properties"]["Events"]["CounterMoved"]["Properties"];
    let patterns = filter_patterns(p);
    let local: serde_json::Value =
        serde_json::from_str(eventstore_dynamodb::trigger::COUNTER_FILTER).unwrap();
    assert_eq!(patterns, vec![local]);
    assert_eq!(p["ParallelizationFactor"], Value::from(1));
    assert_eq!(p["MaximumRetryAttempts"], Value::from(10));
    assert_eq!(text(&p["DestinationConfig"]["OnFailure"]["Type"]), "SQS");
    // The scheduled catch-up that brings a projection left behind to the head.
    let schedule = &function["Properties"]["Events"]["CatchUp"];
    assert_eq!(text(&schedule["Type"]), "Schedule");
    assert_eq!(text(&schedule["Properties"]["Schedule"]), "rate(1 minute)");
    // The projection tables have the key schema the local set-up creates.
    for table in ["ProjectionsTable", "CheckpointsTable"] {
        let props = &t["Resources"][table]["Properties"];
        assert_eq!(
            pairs(&props["KeySchema"], "AttributeName", "KeyType"),
            eventstore_dynamodb::key_value_table_key(),
            "{table}"
        );
    }
    for variable in ["PROJECTIONS_TABLE", "CHECKPOINTS_TABLE", "EVENTS_TABLE"] {
        assert!(
            !t["Globals"]["Function"]["Environment"]["Variables"][variable].is_null(),
            "{variable}"
        );
    }
}

/// The publisher is fed as the projector is, reads the settings the template gives it
/// (`PublishSettings::from_lookup` accepts them), and may put events on its bus only.
#[test]
fn the_publisher_is_fed_by_the_counter_records_and_reads_the_templates_settings() {
    let t = template();
    let function = &t["Resources"]["PublisherFunction"];
    assert_eq!(text(&function["Condition"]), "Publish");
    assert_eq!(
        text(&function["Properties"]["CodeUri"]),
        "../functions/publisher"
    );
    let p = &function["Properties"]["Events"]["CounterMoved"]["Properties"];
    let local: serde_json::Value =
        serde_json::from_str(eventstore_dynamodb::trigger::COUNTER_FILTER).unwrap();
    assert_eq!(filter_patterns(p), vec![local]);
    assert_eq!(text(&p["DestinationConfig"]["OnFailure"]["Type"]), "SQS");
    let schedule = &function["Properties"]["Events"]["CatchUp"];
    assert_eq!(text(&schedule["Properties"]["Schedule"]), "rate(1 minute)");
    let env = &function["Properties"]["Environment"]["Variables"];
    for (variable, parameter) in [
        ("EVENT_BUS_NAME", "PublishBusName"),
        ("PUBLISH_FILTER", "PublishFilter"),
        ("PUBLISH_SOURCE", "PublishSource"),
    ] {
        assert!(
            serde_yaml_ng::to_string(&env[variable])
                .unwrap()
                .contains(parameter),
            "{variable} comes from {parameter}"
        );
    }
    // The parameters' defaults and examples are settings the function starts with.
    let default_filter = text(&t["Parameters"]["PublishFilter"]["Default"]);
    for filter in [
        default_filter.as_str(),
        "type:MoneyDeposited",
        "category:Account",
    ] {
        let settings = eventstore_dynamodb::PublishSettings::from_lookup(|name| match name {
            "EVENT_BUS_NAME" => Some("orders".into()),
            "PUBLISH_FILTER" => Some(filter.into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(settings.bus, "orders");
    }
    let policy = serde_yaml_ng::to_string(&t["Resources"]["PublisherRole"]).unwrap();
    assert!(policy.contains("events:PutEvents"));
    assert!(
        policy.contains("event-bus/${PublishBusName}"),
        "PutEvents on the configured bus only"
    );
}

#[test]
fn the_sweep_schedule_sends_what_the_sequencer_reads() {
    let t = template();
    let sweep = &t["Resources"]["SequencerFunction"]["Properties"]["Events"]["Sweep"];
    assert_eq!(text(&sweep["Type"]), "ScheduleV2");
    assert_eq!(
        text(&sweep["Properties"]["ScheduleExpression"]),
        "rate(1 minute)"
    );
    let input: serde_json::Value =
        serde_json::from_str(&text(&sweep["Properties"]["Input"])).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(eventstore_dynamodb::trigger::SWEEP_INPUT).unwrap();
    assert_eq!(input, expected);
}

/// Every alarm and dashboard entry on the stack's own namespace names a metric the code
/// emits (`eventstore_dynamodb::metrics::ALL`), and every metric the code emits is alarmed
/// on or charted: renaming either side fails here.
#[test]
fn the_alarms_and_dashboard_watch_the_metrics_the_code_emits() {
    use eventstore_dynamodb::metrics::ALL;
    let t = template();
    let emitted: std::collections::BTreeSet<&str> = ALL.iter().map(|m| m.name).collect();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut alarmed = std::collections::BTreeSet::new();
    for (name, resource) in resources {
        if text(&resource["Type"]) != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &resource["Properties"];
        let namespace = serde_yaml_ng::to_string(&p["Namespace"]).unwrap();
        assert!(
            !text(&p["AlarmDescription"]).is_empty(),
            "{name:?} says what it means"
        );
        if namespace.contains("EventStore/${AWS::StackName}") {
            let metric = text(&p["MetricName"]);
            assert!(
                emitted.contains(metric.as_str()),
                "alarm {name:?} watches {metric}, which the code does not emit"
            );
            alarmed.insert(metric);
        }
    }
    assert!(alarmed.len() >= 4, "{alarmed:?}");
    let dashboard = serde_yaml_ng::to_string(&t["Resources"]["Dashboard"]).unwrap();
    for metric in &emitted {
        assert!(
            alarmed.contains(*metric) || dashboard.contains(&format!("\"{metric}\"")),
            "{metric} is emitted but neither alarmed on nor charted"
        );
    }
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(
        serde_yaml_ng::to_string(&env[eventstore_dynamodb::metrics::NAMESPACE_VARIABLE])
            .unwrap()
            .contains("EventStore/${AWS::StackName}")
    );
}

#[test]
fn the_api_reference_documents_exactly_the_operations_of_the_openapi_spec() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let openapi: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(format!("{root}/infra/openapi.yaml")).unwrap(),
    )
    .unwrap();
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let mut declared = std::collections::BTreeSet::new();
    for (path, operations) in openapi["paths"].as_mapping().unwrap() {
        for (method, _) in operations.as_mapping().unwrap() {
            let method = text(method).to_uppercase();
            if methods.contains(&method.as_str()) {
                declared.insert(format!("{method} {}", text(path)));
            }
        }
    }
    // Every "`METHOD /path" the reference names, up to its query string or closing quote.
    let docs = std::fs::read_to_string(format!("{root}/docs/api.md")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for method in methods {
        let marker = format!("`{method} /");
        for (at, _) in docs.match_indices(&marker) {
            let rest = &docs[at + 1 + method.len() + 1..];
            let end = rest.find(['`', '?', ' ']).unwrap();
            documented.insert(format!("{method} {}", &rest[..end]));
        }
    }
    assert_eq!(documented, declared);
}
