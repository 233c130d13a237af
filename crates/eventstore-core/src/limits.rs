//! The limits users must know (mirrored in docs/limits.md).

/// Longest stream id, in bytes of UTF-8.
pub const MAX_STREAM_ID_BYTES: usize = 256;
/// Longest event type, in characters (all ASCII).
pub const MAX_EVENT_TYPE_CHARS: usize = 128;
/// Events in one append request.
pub const MAX_EVENTS_PER_APPEND: usize = 100;
/// Bytes of `data` plus `metadata` JSON text in one event.
///
/// DynamoDB caps an item at 400 KB, attribute names included. 256 KiB of payload leaves
/// well over 100 KB for the envelope (keys, ids, names, timestamps) and for attributes the
/// store adds later, such as the global position, so an accepted event can always be stored.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 256 * 1024;
/// Bytes of `data` plus `metadata` JSON text over all events of one append.
///
/// `TransactWriteItems` accepts at most 4 MB in one request; 3 MiB of payload leaves room for
/// 100 envelopes. It also keeps a request under Lambda's 6 MB synchronous payload limit.
pub const MAX_APPEND_PAYLOAD_BYTES: usize = 3 * 1024 * 1024;
/// Highest version or global position the store accepts or hands out: 2^63 - 1, so that
/// every client's signed 64-bit integer holds them.
pub const MAX_POSITION: u64 = i64::MAX as u64;
/// Events one read returns at most.
pub const MAX_READ_LIMIT: usize = 1000;
/// Default number of events a read returns.
pub const DEFAULT_READ_LIMIT: usize = 100;
/// Payload bytes one read page returns at most (it always returns at least one event).
///
/// Keeps every response under Lambda's 6 MB response limit, whatever `limit` asks for.
pub const MAX_READ_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Attempts of an `any`/`stream_exists` append that loses races before it gives up.
pub const MAX_APPEND_ATTEMPTS: u32 = 40;
