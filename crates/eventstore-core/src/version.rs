use std::fmt;

use serde::{Serialize, Serializer};

/// What the writer believes about the stream's version before its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must be exactly at this version; `Exact(0)` means it must not exist.
    Exact(u64),
    /// The stream must not exist (same as `Exact(0)`).
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// No expectation: append after whatever is there.
    Any,
}

impl ExpectedVersion {
    /// The version the stream must be at, when the expectation pins one.
    pub fn pinned(self) -> Option<u64> {
        match self {
            Self::Exact(v) => Some(v),
            Self::NoStream => Some(0),
            Self::StreamExists | Self::Any => None,
        }
    }

    /// Whether a stream at `current` satisfies the expectation.
    pub fn admits(self, current: u64) -> bool {
        match self {
            Self::Exact(v) => v == current,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Any => true,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(v) => write!(f, "{v}"),
            Self::NoStream => f.write_str("no_stream"),
            Self::StreamExists => f.write_str("stream_exists"),
            Self::Any => f.write_str("any"),
        }
    }
}

/// Serialises the way the API accepts it: a number or one of the three keywords.
impl Serialize for ExpectedVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact(v) => serializer.serialize_u64(*v),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

/// The versions `count` events take when appended to a stream at `current`, or `None` when
/// they would not fit in a `u64`.
pub(crate) fn versions_after(current: u64, count: usize) -> Option<(u64, u64)> {
    let count = u64::try_from(count).ok()?;
    let first = current.checked_add(1)?;
    let last = current.checked_add(count)?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_admits_exactly_its_versions() {
        assert!(ExpectedVersion::Exact(0).admits(0));
        assert!(!ExpectedVersion::Exact(0).admits(1));
        assert!(ExpectedVersion::Exact(3).admits(3));
        assert!(!ExpectedVersion::Exact(3).admits(2));
        assert!(ExpectedVersion::NoStream.admits(0));
        assert!(!ExpectedVersion::NoStream.admits(5));
        assert!(!ExpectedVersion::StreamExists.admits(0));
        assert!(ExpectedVersion::StreamExists.admits(1));
        assert!(ExpectedVersion::Any.admits(0) && ExpectedVersion::Any.admits(9));
    }

    #[test]
    fn pinned_versions() {
        assert_eq!(ExpectedVersion::NoStream.pinned(), Some(0));
        assert_eq!(ExpectedVersion::Exact(7).pinned(), Some(7));
        assert_eq!(ExpectedVersion::Any.pinned(), None);
        assert_eq!(ExpectedVersion::StreamExists.pinned(), None);
    }

    #[test]
    fn appended_versions_follow_the_current_one_and_never_overflow() {
        assert_eq!(versions_after(0, 1), Some((1, 1)));
        assert_eq!(versions_after(2, 3), Some((3, 5)));
        assert_eq!(versions_after(u64::MAX - 1, 1), Some((u64::MAX, u64::MAX)));
        assert_eq!(versions_after(u64::MAX - 1, 2), None);
        assert_eq!(versions_after(u64::MAX, 1), None);
    }

    #[test]
    fn serialises_as_the_api_spells_it() {
        let json = |v: ExpectedVersion| serde_json::to_string(&v).unwrap();
        assert_eq!(json(ExpectedVersion::Exact(2)), "2");
        assert_eq!(json(ExpectedVersion::NoStream), "\"no_stream\"");
        assert_eq!(json(ExpectedVersion::StreamExists), "\"stream_exists\"");
        assert_eq!(json(ExpectedVersion::Any), "\"any\"");
    }
}
