//! Just enough of DynamoDB's expression syntax to tell which partition a Query reads and
//! which attributes an update sets or removes.

use serde_json::Value;

use super::size::scalar;

fn resolve(token: &str, request: &Value) -> String {
    let token = token.trim();
    if token.starts_with('#') {
        request["ExpressionAttributeNames"][token]
            .as_str()
            .unwrap_or(token)
            .to_owned()
    } else {
        token.to_owned()
    }
}

/// The partition key value of a Query: the first `name = :value` of its key condition.
pub fn partition_value(request: &Value) -> Option<String> {
    let condition = request["KeyConditionExpression"].as_str()?;
    let first = condition.split(" AND ").next()?;
    let (_, value) = first.split_once('=')?;
    let value = value.trim().trim_end_matches(')');
    Some(scalar(&request["ExpressionAttributeValues"][value]))
}

/// Splits at commas outside parentheses (`if_not_exists(#a, :b)` is one term).
fn terms(clause: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in clause.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&clause[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&clause[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// The attributes an `UpdateItem` (or a transaction's `Update`) sets and removes.
pub fn updated_attributes(action: &Value) -> (Vec<String>, Vec<String>) {
    let expression = action["UpdateExpression"].as_str().unwrap_or("");
    let (mut set, mut removed) = (Vec::new(), Vec::new());
    // Clauses start with a keyword; split the text at each keyword that stands alone.
    let mut clauses: Vec<(&str, String)> = Vec::new();
    for word in expression.split_whitespace() {
        match word {
            "SET" | "REMOVE" | "ADD" | "DELETE" => clauses.push((word, String::new())),
            _ => {
                if let Some((_, text)) = clauses.last_mut() {
                    text.push(' ');
                    text.push_str(word);
                }
            }
        }
    }
    for (keyword, text) in &clauses {
        for term in terms(text) {
            let name = match *keyword {
                "SET" => term.split('=').next().unwrap_or(""),
                "REMOVE" => term,
                _ => term.split_whitespace().next().unwrap_or(""),
            };
            let name = resolve(name, action);
            if *keyword == "REMOVE" {
                removed.push(name);
            } else {
                set.push(name);
            }
        }
    }
    (set, removed)
}

/// The attributes an update sets to a plain value (`#name = :value`), with those values:
/// what the item holds after it, where an expression computes nothing.
pub fn set_values(action: &Value) -> Vec<(String, Value)> {
    let expression = action["UpdateExpression"].as_str().unwrap_or("");
    let Some(set) = expression.strip_prefix("SET ") else {
        return Vec::new();
    };
    let set = set
        .split(" REMOVE ")
        .next()
        .unwrap_or("")
        .split(" ADD ")
        .next()
        .unwrap_or("");
    terms(set)
        .into_iter()
        .filter_map(|term| {
            let (name, value) = term.split_once('=')?;
            let value = value.trim();
            let literal = action["ExpressionAttributeValues"].get(value)?;
            Some((resolve(name, action), literal.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_update_names_what_it_sets_and_removes() {
        let action = json!({
            "UpdateExpression": "SET #pos = :pos, #b = if_not_exists(#b, :z) REMOVE #u ADD n :one",
            "ExpressionAttributeNames": {"#pos": "globalPosition", "#b": "globalBucket", "#u": "unsequencedShard"}
        });
        assert_eq!(
            updated_attributes(&action),
            (
                vec![
                    "globalPosition".to_owned(),
                    "globalBucket".to_owned(),
                    "n".to_owned()
                ],
                vec!["unsequencedShard".to_owned()]
            )
        );
    }

    #[test]
    fn an_update_gives_the_values_it_sets_plainly() {
        let action = json!({
            "UpdateExpression": "SET #last = :new, #claim = :claim, #b = if_not_exists(#b, :z) REMOVE #u",
            "ExpressionAttributeNames": {"#last": "last", "#claim": "claim", "#b": "b", "#u": "u"},
            "ExpressionAttributeValues": {":new": {"N": "7"}, ":claim": {"S": "{}"}, ":z": {"N": "0"}}
        });
        assert_eq!(
            set_values(&action),
            vec![
                ("last".to_owned(), json!({"N": "7"})),
                ("claim".to_owned(), json!({"S": "{}"}))
            ]
        );
    }

    #[test]
    fn a_query_names_its_partition() {
        let request = json!({
            "KeyConditionExpression": "#k = :k AND #p >= :p",
            "ExpressionAttributeValues": {":k": {"N": "3"}, ":p": {"N": "3001"}}
        });
        assert_eq!(partition_value(&request), Some("3".to_owned()));
    }
}
