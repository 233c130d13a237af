//! Item sizes as DynamoDB counts them for capacity: each attribute's name in UTF-8 bytes
//! plus its value (strings and binaries by length, numbers by about one byte per two
//! significant digits plus one, 1 byte for booleans and nulls, 3 bytes of overhead plus
//! one per element for lists and maps).

use std::collections::BTreeMap;

use serde_json::Value;

pub fn item_size(item: &BTreeMap<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| attribute_size(name, value))
        .sum()
}

pub fn attribute_size(name: &str, value: &Value) -> usize {
    name.len() + value_size(value)
}

fn number_size(text: &str) -> usize {
    let digits = text
        .trim_start_matches('-')
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

fn value_size(value: &Value) -> usize {
    let Some(map) = value.as_object() else {
        return 0;
    };
    let Some((kind, inner)) = map.iter().next() else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        // Binary travels base64-encoded.
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "N" => inner.as_str().map_or(1, number_size),
        "BOOL" | "NULL" => 1,
        "SS" | "BS" => inner.as_array().map_or(0, |a| {
            a.iter().map(|s| s.as_str().map_or(0, str::len)).sum()
        }),
        "NS" => inner.as_array().map_or(0, |a| {
            a.iter().map(|s| s.as_str().map_or(1, number_size)).sum()
        }),
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |a| a.iter().map(|v| 1 + value_size(v)).sum::<usize>())
        }
        "M" => {
            3 + inner.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum::<usize>()
            })
        }
        _ => 0,
    }
}

/// A scalar attribute value as text (a partition key's value).
pub fn scalar(value: &Value) -> String {
    value
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

/// An SDK item as DynamoDB's JSON, as it travels on the wire.
pub fn item_json(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> BTreeMap<String, Value> {
    item.iter()
        .map(|(name, value)| (name.clone(), attribute_json(value)))
        .collect()
}

fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    // Binary travels base64-encoded; only its length matters here.
    let b64 =
        |b: &aws_smithy_types::Blob| Value::from("A".repeat(4 * b.as_ref().len().div_ceil(3)));
    match value {
        A::S(s) => serde_json::json!({ "S": s }),
        A::N(n) => serde_json::json!({ "N": n }),
        A::B(b) => serde_json::json!({ "B": b64(b) }),
        A::Bool(b) => serde_json::json!({ "BOOL": b }),
        A::Null(n) => serde_json::json!({ "NULL": n }),
        A::Ss(v) => serde_json::json!({ "SS": v }),
        A::Ns(v) => serde_json::json!({ "NS": v }),
        A::Bs(v) => serde_json::json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        A::L(v) => serde_json::json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::M(m) => serde_json::json!({ "M": item_json(m) }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item: BTreeMap<String, Value> = serde_json::from_value(json!({
            "PK": {"S": "STREAM#a"},
            "version": {"N": "12345"},
            "ok": {"BOOL": true},
            "m": {"M": {"k": {"S": "vv"}}}
        }))
        .unwrap();
        // 2+8, 7+(3+1), 2+1, 1+(3 + 1+1+2)
        assert_eq!(item_size(&item), 10 + 11 + 3 + 8);
    }
}
