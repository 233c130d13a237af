//! `eventstore stream` and `eventstore tail`: the store's events as an operator reads them.

use std::time::Duration;

use eventstore_core::limits::MAX_READ_LIMIT;
use eventstore_core::{
    Direction, EventStore, GlobalFilter, RecordedEvent, StreamId, StreamRead, MAX_READ_WAIT,
};
use eventstore_dynamodb::DynamoEventLog;

use crate::json_line;

/// A human-readable line for one event.
fn event_line(e: &RecordedEvent) -> String {
    let position = e
        .global_position
        .map_or_else(|| "-".to_owned(), |p| p.to_string());
    format!(
        "#{position} {} v{} {} {}",
        e.stream_id,
        e.version,
        e.event_type,
        e.data.as_json()
    )
}

pub(crate) async fn stream(
    store: &EventStore<DynamoEventLog>,
    id: &str,
    json: bool,
) -> Result<(), String> {
    let stream = StreamId::parse(id, "stream id").map_err(|e| e.to_string())?;
    let info = store
        .stream_info(&stream)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            json_line(&serde_json::json!({
                "streamId": info.stream_id.as_str(),
                "category": info.category.as_str(),
                "version": info.version,
            }))?
        );
    } else {
        println!(
            "{} (category {}) at version {}",
            info.stream_id, info.category, info.version
        );
    }
    let mut from = Some(1);
    while let Some(start) = from {
        let read = StreamRead {
            from: Some(start),
            direction: Direction::Forward,
            limit: MAX_READ_LIMIT,
        };
        let page = store
            .read_stream(&stream, read)
            .await
            .map_err(|e| e.to_string())?;
        print_events(&page.events, json)?;
        from = page.next;
    }
    Ok(())
}

/// One line per event: JSON as the API returns it, or [`event_line`].
fn print_events(events: &[RecordedEvent], json: bool) -> Result<(), String> {
    for event in events {
        let line = if json {
            json_line(event)?
        } else {
            event_line(event)
        };
        println!("{line}");
    }
    Ok(())
}

pub(crate) async fn tail(
    store: &EventStore<DynamoEventLog>,
    filter: GlobalFilter,
    mut from: u64,
    follow: bool,
    json: bool,
) -> Result<(), String> {
    // Following, an empty page is a long poll: new events print within a poll interval.
    let wait = if follow {
        MAX_READ_WAIT
    } else {
        Duration::ZERO
    };
    loop {
        let page = store
            .read_global_waiting(&filter, Some(from), MAX_READ_LIMIT, wait)
            .await
            .map_err(|e| e.to_string())?;
        print_events(&page.events, json)?;
        from = page.next;
        if page.events.is_empty() && !page.more && !follow {
            return Ok(());
        }
    }
}
