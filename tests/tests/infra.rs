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
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(routes, want);
    let functions: Vec<String> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|r| text(&r["Metadata"]["BuildMethod"]))
        .collect();
    assert_eq!(functions, ["rust-cargolambda", "rust-cargolambda"]);
}
