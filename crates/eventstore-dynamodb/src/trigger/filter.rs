//! Lambda event filter patterns, the subset the template uses, applied by the local event
//! source as Lambda applies them.

use serde_json::{Map, Value};

/// A Lambda event filter pattern, the subset the template uses: nested objects, and lists of
/// allowed values, each a literal or `{"prefix": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern(Map<String, Value>);

impl FilterPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(pattern).map_err(|e| format!("filter pattern: {e}"))?;
        let Value::Object(map) = value else {
            return Err("filter pattern: not a JSON object".into());
        };
        check(&map)?;
        Ok(Self(map))
    }

    /// Whether a record, in the JSON shape Lambda delivers, passes the filter.
    pub fn matches(&self, record: &Value) -> bool {
        matches_object(&self.0, record)
    }
}

fn check(pattern: &Map<String, Value>) -> Result<(), String> {
    for (field, rule) in pattern {
        match rule {
            Value::Object(inner) => check(inner)?,
            Value::Array(allowed) => {
                for a in allowed {
                    match a {
                        Value::Object(op)
                            if op.len() == 1 && op.get("prefix").is_some_and(Value::is_string) => {}
                        Value::Object(_) | Value::Array(_) => {
                            return Err(format!("filter pattern: unsupported rule for {field}"))
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                return Err(format!(
                    "filter pattern: {field} must be an object or a list"
                ))
            }
        }
    }
    Ok(())
}

fn matches_object(pattern: &Map<String, Value>, value: &Value) -> bool {
    pattern.iter().all(|(field, rule)| {
        let Some(actual) = value.get(field) else {
            return false;
        };
        match rule {
            Value::Object(inner) => matches_object(inner, actual),
            Value::Array(allowed) => allowed.iter().any(|a| match a {
                Value::Object(op) => match (op.get("prefix"), actual) {
                    (Some(Value::String(p)), Value::String(s)) => s.starts_with(p.as_str()),
                    _ => false,
                },
                literal => literal == actual,
            }),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::sequencer::EVENT_INSERTS_FILTER;
    use super::*;
    use serde_json::json;

    fn record(name: &str, sk: &str) -> Value {
        json!({"eventName": name, "dynamodb": {"Keys": {"PK": {"S": "STREAM#a"}, "SK": {"S": sk}}}})
    }

    #[test]
    fn the_sequencer_filter_passes_event_inserts_only() {
        let f = FilterPattern::parse(EVENT_INSERTS_FILTER).unwrap();
        assert!(f.matches(&record("INSERT", "VERSION#00000000000000000001")));
        assert!(!f.matches(&record("MODIFY", "VERSION#00000000000000000001")));
        assert!(!f.matches(&record("INSERT", "HEAD")));
        assert!(!f.matches(&json!({"eventName": "INSERT"})));
    }

    #[test]
    fn unsupported_filter_rules_are_refused() {
        assert!(FilterPattern::parse(r#"{"a": [{"numeric": [">", 1]}]}"#).is_err());
        assert!(FilterPattern::parse(r#"{"a": "x"}"#).is_err());
        assert!(FilterPattern::parse("[]").is_err());
    }
}
