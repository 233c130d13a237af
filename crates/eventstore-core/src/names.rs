use std::fmt;

use crate::limits::{MAX_EVENT_TYPE_CHARS, MAX_STREAM_ID_BYTES};
use crate::ValidationError;

/// A stream id: 1 to 256 bytes of UTF-8, no control characters, not starting with `$` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    /// Validates `raw`; `field` names it in the error (e.g. `streamId`).
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
        let id = Self::stored(raw, field)?;
        // The category is the part before the first '-': it must not be empty, since it is
        // a key of the category index (and a name that can be read back by category).
        if raw.starts_with('-') {
            return Err(ValidationError::new(
                field,
                "must not start with '-' (its category, the part before the first '-', would be empty)",
            ));
        }
        Ok(id)
    }

    /// A stream id read back from storage, checked by the rules it was written under:
    /// those of [`StreamId::parse`] except the leading `-`, which earlier versions
    /// accepted, so that such streams stay readable and sequenceable.
    pub fn stored(raw: &str, field: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if raw.len() > MAX_STREAM_ID_BYTES {
            return Err(ValidationError::new(
                field,
                format!(
                    "is {} bytes long; at most {MAX_STREAM_ID_BYTES} bytes of UTF-8 are allowed",
                    raw.len()
                ),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field,
                "must not contain control characters",
            ));
        }
        if raw.starts_with('$') {
            return Err(ValidationError::new(
                field,
                "must not start with '$' (reserved for the store)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-`, or the whole id when it has none.
    pub fn category(&self) -> Category {
        let end = self.0.find('-').unwrap_or(self.0.len());
        Category(self.0[..end].to_owned())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stream category, the prefix of stream ids before the first `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    /// Validates a category asked for by a reader. A category is a stream id prefix, so it
    /// follows the stream id rules and cannot contain `-`; it is never empty, since a stream
    /// id cannot start with `-`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
        let id = StreamId::parse(raw, field)?;
        if raw.contains('-') {
            return Err(ValidationError::new(
                field,
                "must not contain '-' (a category is the part of a stream id before the first '-')",
            ));
        }
        Ok(Self(id.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event type: 1 to 128 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if raw.len() > MAX_EVENT_TYPE_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {MAX_EVENT_TYPE_CHARS} characters"),
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        {
            return Err(ValidationError::new(
                field,
                format!(
                    "contains U+{:04X}; only [A-Za-z0-9_.:-] are allowed",
                    u32::from(bad)
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_accepts_256_bytes_of_multibyte_utf8_and_rejects_257() {
        let ok = "é".repeat(128); // 2 bytes each
        assert!(StreamId::parse(&ok, "streamId").is_ok());
        let too_long = format!("{ok}x");
        let err = StreamId::parse(&too_long, "streamId").unwrap_err();
        assert_eq!(err.field, "streamId");
    }

    #[test]
    fn stream_id_rejects_empty_control_chars_and_dollar_prefix() {
        for bad in [
            "",
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            "\u{7f}",
            "$all",
            "$",
            "-x",
            "-",
        ] {
            assert!(StreamId::parse(bad, "streamId").is_err(), "{bad:?}");
        }
        assert!(StreamId::parse("a$b", "streamId").is_ok());
    }

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        let id = |s: &str| StreamId::parse(s, "s").unwrap().category();
        assert_eq!(id("Order-abc123").as_str(), "Order");
        assert_eq!(id("Order-abc-123").as_str(), "Order");
        assert_eq!(id("Order").as_str(), "Order");
        assert_eq!(id("x-").as_str(), "x");
        let stored = StreamId::stored("-x", "s").unwrap();
        assert_eq!(stored.category().as_str(), "");
    }

    #[test]
    fn category_names_cannot_contain_a_dash() {
        assert!(Category::parse("Order", "category").is_ok());
        assert!(Category::parse("Order-1", "category").is_err());
        assert!(Category::parse("", "category").is_err());
    }

    #[test]
    fn event_type_allows_only_its_charset_and_128_chars() {
        assert!(EventType::parse("Money.Deposited:v2_x-y", "eventType").is_ok());
        assert!(EventType::parse(&"a".repeat(128), "eventType").is_ok());
        for bad in ["", "has space", "slash/", "ü", &"a".repeat(129)] {
            assert!(EventType::parse(bad, "eventType").is_err(), "{bad:?}");
        }
    }
}
