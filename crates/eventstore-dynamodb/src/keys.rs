//! Every DynamoDB key and attribute name the store uses, built in this one place.
//!
//! Events table items:
//!
//! | item  | `PK`                | `SK`                          |
//! |-------|---------------------|-------------------------------|
//! | event | `STREAM#<stream id>` | `VERSION#<20-digit version>` |
//!
//! The `GlobalOrder` index has partition key `globalBucket` (`globalPosition / 1000`) and
//! sort key `globalPosition`. Both are absent until the store assigns the position, so an
//! event enters the index only then (a sparse index).

pub const PK: &str = "PK";
pub const SK: &str = "SK";

pub const EVENT_ID: &str = "eventId";
pub const GLOBAL_POSITION: &str = "globalPosition";
pub const GLOBAL_BUCKET: &str = "globalBucket";

pub const GLOBAL_ORDER_INDEX: &str = "GlobalOrder";

/// Positions per `globalBucket`. A bucket bounds how much of the index one partition key
/// holds, so the index spreads over partitions as the store grows; a page of at most
/// 1000 events spans at most two buckets.
pub const GLOBAL_BUCKET_SIZE: u64 = 1000;

const STREAM_PREFIX: &str = "STREAM#";
const VERSION_PREFIX: &str = "VERSION#";

pub fn stream_pk(stream_id: &str) -> String {
    format!("{STREAM_PREFIX}{stream_id}")
}

/// `VERSION#` and the version zero-padded to 20 digits (the width of `u64::MAX`), so that
/// the string order of sort keys is the numeric order of versions.
pub fn version_sk(version: u64) -> String {
    format!("{VERSION_PREFIX}{version:020}")
}

pub fn parse_version_sk(sk: &str) -> Option<u64> {
    let digits = sk.strip_prefix(VERSION_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn global_bucket(position: u64) -> u64 {
    position / GLOBAL_BUCKET_SIZE
}

/// The highest position bucket `bucket` can hold; `None` for the last, partial bucket of the
/// `u64` range.
pub fn last_position_of_bucket(bucket: u64) -> Option<u64> {
    bucket
        .checked_add(1)?
        .checked_mul(GLOBAL_BUCKET_SIZE)
        .map(|end| end - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract_layout() {
        assert_eq!(stream_pk("Account-42"), "STREAM#Account-42");
        assert_eq!(version_sk(7), "VERSION#00000000000000000007");
        assert_eq!(version_sk(u64::MAX), "VERSION#18446744073709551615");
    }

    #[test]
    fn version_sort_keys_sort_like_numbers_and_parse_back() {
        let mut keys: Vec<String> = [10u64, 9, 100, 1].iter().map(|v| version_sk(*v)).collect();
        keys.sort();
        let parsed: Vec<u64> = keys.iter().filter_map(|k| parse_version_sk(k)).collect();
        assert_eq!(parsed, vec![1, 9, 10, 100]);
        assert_eq!(parse_version_sk("VERSION#7"), None);
        assert_eq!(parse_version_sk("SNAPSHOT#00000000000000000007"), None);
    }

    #[test]
    fn positions_fall_into_buckets_of_a_thousand() {
        assert_eq!(global_bucket(1), 0);
        assert_eq!(global_bucket(999), 0);
        assert_eq!(global_bucket(1000), 1);
        assert_eq!(global_bucket(2500), 2);
        assert_eq!(last_position_of_bucket(0), Some(999));
        assert_eq!(last_position_of_bucket(2), Some(2999));
        assert_eq!(last_position_of_bucket(global_bucket(u64::MAX)), None);
    }
}
