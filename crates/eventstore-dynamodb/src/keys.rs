//! Every DynamoDB key and attribute name the store uses, built in this one place.
//!
//! Events table items:
//!
//! | item  | `PK`                | `SK`                          |
//! |-------|---------------------|-------------------------------|
//! | event | `STREAM#<stream id>` | `VERSION#<20-digit version>` |
//! | stream head (sequencer) | `STREAM#<stream id>` | `HEAD` |
//! | snapshot (the newest), after every event | `STREAM#<stream id>` | `VERSION~SNAPSHOT` |
//! | snapshot as earlier versions stored it (read only) | `STREAM#<stream id>` | `SNAPSHOT` |
//! | global counter | `COUNTER#ALL` | `COUNTER` |
//!
//! The sequencer writes `sequencedVersion` on stream heads, `last` and `claim` on the
//! counter, and on each event `globalPosition` and `globalBucket`. Earlier versions also
//! kept a counter per event type and per category (`COUNTER#TYPE#...`,
//! `COUNTER#CATEGORY#...`) and wrote `typeSequence` and `categorySequence` on events;
//! nothing reads them now.
//!
//! One sparse index serves the global order: an event enters it only when the sequencer
//! gives it a position, since its sort key is `globalPosition`. Type and category reads
//! walk it too, passing over the other events: an index keyed by type or category would
//! put every event of a busy one on one partition key.
//!
//! | index | partition key | sort key |
//! |-------|---------------|----------|
//! | `GlobalOrder` | `globalBucket` (`globalPosition / 1000`) | `globalPosition` |
//!
//! Checkpoints table items (`CHECKPOINTS_TABLE`):
//!
//! | item | `PK` | `SK` |
//! |------|------|------|
//! | projection checkpoint | `PROJECTION#<name>` | `CHECKPOINT` |
//! | rebuild checkpoint | `PROJECTION#<name>#REBUILD` | `CHECKPOINT` |
//! | parked event | `PARKED#<name>#<generation>` | `<20-digit position>` |
//! | subscriber checkpoint | `SUBSCRIPTION#<name>` | `CHECKPOINT` |
//! | publisher checkpoint | `PUBLISHER#<name>` | `CHECKPOINT` |
//! | publisher's parked event | `PUBLISHER#<name>#PARKED` | `<20-digit position>` |
//!
//! Projection rows (`PROJECTIONS_TABLE`): `PK = <name>#<generation>#<key>`, `SK = <item>`
//! (`-` for a key's single row), the row's JSON in `value` and the position that wrote it
//! in `position`.

pub const PK: &str = "PK";
pub const SK: &str = "SK";

pub const EVENT_ID: &str = "eventId";
pub const VERSION: &str = "version";
pub const EVENT_TYPE: &str = "eventType";
pub const CATEGORY: &str = "category";
pub const CREATED_AT: &str = "createdAt";
pub const DATA: &str = "data";
pub const GLOBAL_POSITION: &str = "globalPosition";
pub const GLOBAL_BUCKET: &str = "globalBucket";
/// On a counter: the last number handed out.
pub const COUNTER_LAST: &str = "last";
/// On the global counter: the claim that handed out the last positions, as JSON (see
/// `sequencer::claim`).
pub const COUNTER_CLAIM: &str = "claim";

pub const GLOBAL_ORDER_INDEX: &str = "GlobalOrder";

/// The sort key of the stream heads earlier versions kept (the last version sequenced).
/// Nothing reads or writes them now; tables keep those already written, and they sort
/// before every `VERSION#` key, so the version range queries never meet them.
pub const LEGACY_HEAD_SK: &str = "HEAD";
pub const COUNTER_SK: &str = "COUNTER";
/// The sort key of a stream's snapshot. `~` sorts after `#`, so it sorts after every
/// `VERSION#` key: a backward Query from the end of the partition reads the snapshot first
/// and then the events after it. Version ranges never meet it, and it is outside the
/// `VERSION#` prefix the stream triggers' filters match.
pub const SNAPSHOT_SK: &str = "VERSION~SNAPSHOT";
/// Where versions before [`SNAPSHOT_SK`] kept a stream's snapshot (sorting before every
/// event). Read where no snapshot is at the new key; never written.
pub const LEGACY_SNAPSHOT_SK: &str = "SNAPSHOT";
pub const SCHEMA_VERSION: &str = "schemaVersion";
pub const SNAPSHOT_STATE: &str = "state";
/// Partition key of the counter of global positions.
pub const GLOBAL_COUNTER_PK: &str = "COUNTER#ALL";

/// Positions per `globalBucket`. A bucket bounds how much of the index one partition key
/// holds, so the index spreads over partitions as the store grows; a page of at most
/// 1000 events spans at most two buckets.
pub const GLOBAL_BUCKET_SIZE: u64 = 1000;

/// The sort key of every checkpoint item.
pub const CHECKPOINT_SK: &str = "CHECKPOINT";
/// On a checkpoint: the last position applied; on a row: the position that wrote it.
pub const POSITION: &str = "position";
/// On a checkpoint: the generation of rows it fills.
pub const GENERATION: &str = "generation";
/// On a checkpoint: how many events it parked.
pub const PARKED: &str = "parked";
/// On a checkpoint: failed attempts at the event after its position.
pub const FAILURES: &str = "failures";
/// On a checkpoint: the token of the last failed attempt counted.
pub const FAILED_ATTEMPT: &str = "failedAttempt";
/// On a projection row: its JSON text.
pub const ROW_VALUE: &str = "value";
/// On a parked event: its stream, its error and its failed attempts.
pub const STREAM_ID: &str = "streamId";
pub const ERROR: &str = "error";
pub const ATTEMPTS: &str = "attempts";

const REBUILD_SUFFIX: &str = "#REBUILD";
/// The sort key of a key's single row.
const SINGLE_ROW_SK: &str = "-";

/// The live checkpoint of projection `name`.
pub fn checkpoint_pk(name: &str) -> String {
    format!("PROJECTION#{name}")
}

/// The checkpoint of a rebuild of `name` in progress, beside the live one.
pub fn rebuild_pk(name: &str) -> String {
    format!("{}{REBUILD_SUFFIX}", checkpoint_pk(name))
}

/// Parked events are kept per generation: a rebuild parks in its own, and readers see
/// those of the live generation only.
pub fn parked_pk(name: &str, generation: u64) -> String {
    format!("PARKED#{name}#{generation}")
}

/// Where versions before generations kept parked events. Only generation 1 can have
/// parked there (a rebuild's were mixed in), so it is read for generation 1 only.
pub fn legacy_parked_pk(name: &str) -> String {
    format!("PARKED#{name}")
}

/// A parked event's sort key: its position, zero-padded so they sort by position.
pub fn parked_sk(position: u64) -> String {
    format!("{position:020}")
}

/// The checkpoint of external subscriber `name`.
pub fn subscription_pk(name: &str) -> String {
    format!("SUBSCRIPTION#{name}")
}

/// The checkpoint of publisher `name` (the next position it publishes).
pub fn publisher_pk(name: &str) -> String {
    format!("PUBLISHER#{name}")
}

/// The events publisher `name` parked, by position ([`parked_sk`]).
pub fn publisher_parked_pk(name: &str) -> String {
    format!("{}#PARKED", publisher_pk(name))
}

/// The partition of the rows under `key` in generation `generation` of projection `name`.
pub fn rows_pk(name: &str, generation: u64, key: &str) -> String {
    format!("{name}#{generation}#{key}")
}

/// The key of a projection row: a key's single row (empty item) has sort key `-`.
pub fn row_key(name: &str, generation: u64, row: &eventstore_core::RowId) -> (String, String) {
    (rows_pk(name, generation, &row.key), row_sk(&row.item))
}

/// The sort key of item `item` (`-` for the empty item).
pub fn row_sk(item: &str) -> String {
    if item.is_empty() {
        SINGLE_ROW_SK.to_owned()
    } else {
        item.to_owned()
    }
}

/// The item of a row's sort key (the empty item for `-`).
pub fn row_item(sk: &str) -> &str {
    if sk == SINGLE_ROW_SK {
        ""
    } else {
        sk
    }
}

const STREAM_PREFIX: &str = "STREAM#";
const VERSION_PREFIX: &str = "VERSION#";

pub fn stream_pk(stream_id: &str) -> String {
    format!("{STREAM_PREFIX}{stream_id}")
}

/// The stream id inside a `STREAM#` partition key.
pub fn stream_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(STREAM_PREFIX)
}

pub fn type_counter_pk(event_type: &str) -> String {
    format!("COUNTER#TYPE#{event_type}")
}

pub fn category_counter_pk(category: &str) -> String {
    format!("COUNTER#CATEGORY#{category}")
}

/// The prefix that the sort key of every event item, and of no other item, starts with.
pub fn event_sk_prefix() -> &'static str {
    VERSION_PREFIX
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
        assert_eq!(stream_of_pk("STREAM#Account-42"), Some("Account-42"));
        assert_eq!(stream_of_pk("COUNTER#ALL"), None);
        assert_eq!(type_counter_pk("Opened"), "COUNTER#TYPE#Opened");
        assert_eq!(category_counter_pk("Account"), "COUNTER#CATEGORY#Account");
        // Old heads sort before every version so version range queries never return one.
        assert!(LEGACY_HEAD_SK < version_sk(0).as_str());
        // The snapshot sorts after every version, outside the events' prefix.
        assert!(version_sk(u64::MAX).as_str() < SNAPSHOT_SK);
        assert!(!SNAPSHOT_SK.starts_with(event_sk_prefix()));
        assert!(LEGACY_SNAPSHOT_SK < version_sk(1).as_str());
        assert_eq!(parse_version_sk(SNAPSHOT_SK), None);
        assert_eq!(
            parse_version_sk("VERSION#00000000000000000007#SNAPSHOT"),
            None
        );
    }

    #[test]
    fn projection_keys_follow_the_documented_layout() {
        use eventstore_core::RowId;
        assert_eq!(checkpoint_pk("balances"), "PROJECTION#balances");
        assert_eq!(rebuild_pk("balances"), "PROJECTION#balances#REBUILD");
        assert_eq!(parked_pk("balances", 2), "PARKED#balances#2");
        assert_eq!(parked_sk(42), "00000000000000000042");
        assert_eq!(subscription_pk("mailer"), "SUBSCRIPTION#mailer");
        assert_eq!(
            row_key("balances", 1, &RowId::single("a")),
            ("balances#1#a".to_owned(), "-".to_owned())
        );
        assert_eq!(
            row_key("streams", 3, &RowId::item("Account", "Account-1")),
            ("streams#3#Account".to_owned(), "Account-1".to_owned())
        );
        assert_eq!(row_item("-"), "");
        assert_eq!(row_item("Account-1"), "Account-1");
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
