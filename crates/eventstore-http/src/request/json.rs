//! Hostile-body JSON: the body as text, an object's members and an array's elements taken
//! without building the values, so that a large or deep body costs no more than its bytes.

use serde_json::value::RawValue;

use eventstore_core::ValidationError;

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

// Bodies are read without building them. A request body may be 6 MB of anything, and the
// append function has 256 MB: `{"events":[1,1,1,...]}` as a vector of values, or an object
// of a million keys as a map, would cost tens of bytes of heap per byte of body. Here the
// body is checked as JSON by skipping over it, and objects and arrays are walked with serde
// visitors that borrow each member's text from the body and stop at the first unknown or
// repeated key; an array is cut off after the most elements the API accepts (the rest are
// only counted, for the message).

/// The body as JSON text: valid UTF-8 holding exactly one JSON value.
pub(super) fn json_text(body: &[u8]) -> Result<&str, ValidationError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid("body", format!("is not valid JSON: not UTF-8 ({e})")))?;
    serde_json::from_str::<&RawValue>(text)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e}")))?;
    Ok(text)
}

/// The members of the JSON object `text` named in `allowed`, in that order, borrowed from
/// `text`. `field` names the object, `prefix` is put before a member's name in errors.
pub(super) fn members<'a, const N: usize>(
    text: &'a str,
    allowed: [&'static str; N],
    field: &str,
    prefix: &str,
) -> Result<[Option<&'a RawValue>; N], ValidationError> {
    struct Members<'p, const N: usize> {
        allowed: [&'static str; N],
        prefix: &'p str,
        refused: &'p mut Option<ValidationError>,
    }

    impl<'de, const N: usize> serde::de::Visitor<'de> for Members<'_, N> {
        type Value = [Option<&'de RawValue>; N];

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let mut found = [None; N];
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let Some(slot) = self.allowed.iter().position(|a| *a == key) else {
                    *self.refused = Some(invalid(
                        format!("{}{key}", self.prefix),
                        format!(
                            "is not a known field (expected one of: {})",
                            self.allowed.join(", ")
                        ),
                    ));
                    return Err(A::Error::custom("unknown field"));
                };
                if found[slot].is_some() {
                    *self.refused = Some(invalid(
                        format!("{}{key}", self.prefix),
                        "is given more than once",
                    ));
                    return Err(A::Error::custom("repeated field"));
                }
                found[slot] = Some(map.next_value::<&'de RawValue>()?);
            }
            Ok(found)
        }
    }

    let mut refused = None;
    let visitor = Members {
        allowed,
        prefix,
        refused: &mut refused,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = serde::Deserializer::deserialize_map(&mut de, visitor);
    match (result, refused) {
        (_, Some(err)) => Err(err),
        (Ok(found), None) => Ok(found),
        (Err(_), None) => Err(invalid(field, "must be a JSON object")),
    }
}

/// The elements of the JSON array `text`, borrowed from it, if it holds at most `max`;
/// otherwise how many it holds.
pub(super) fn elements(
    text: &str,
    max: usize,
) -> Result<Result<Vec<&RawValue>, usize>, serde_json::Error> {
    struct Elements(usize);

    impl<'de> serde::de::Visitor<'de> for Elements {
        type Value = Result<Vec<&'de RawValue>, usize>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut kept = Vec::new();
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                kept.push(element);
                if kept.len() > self.0 {
                    let mut count = kept.len();
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                        count += 1;
                    }
                    return Ok(Err(count));
                }
            }
            Ok(Ok(kept))
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_seq(&mut de, Elements(max))
}
