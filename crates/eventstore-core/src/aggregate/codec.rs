//! A domain event to and from its stored form: the variant name as the `eventType`, its
//! fields as the `data`.

use serde_json::Value;

use super::DomainEvent;
use crate::{EventData, EventType, StoreError};

/// Splits an event into its stored type and data. The data is the variant's fields as serde
/// writes them, in their declared order.
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<(EventType, EventData), StoreError> {
    let text = serde_json::to_string(event)
        .map_err(|e| StoreError::internal("encoding a domain event", e))?;
    let not_a_variant = || {
        StoreError::corrupt("a domain event must serialise as an externally tagged enum variant")
    };
    // A unit variant is its name as a JSON string; any other variant is {"Name": fields}.
    let (name, data) = if let Ok(name) = serde_json::from_str::<String>(&text) {
        (name, "{}".to_owned())
    } else {
        let tagged: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_str(&text).map_err(|_| not_a_variant())?;
        let mut entries = tagged.into_iter();
        match (entries.next(), entries.next()) {
            (Some((name, data)), None) => (name, data.get().to_owned()),
            _ => return Err(not_a_variant()),
        }
    };
    let event_type = EventType::parse(&name, "eventType")?;
    Ok((event_type, EventData::from_json(data, "data")?))
}

/// Rebuilds a domain event from its stored type and data.
pub fn decode_event<E: DomainEvent>(
    event_type: &EventType,
    data: &EventData,
) -> Result<E, StoreError> {
    let data: Value = serde_json::from_str(data.as_json())
        .map_err(|e| StoreError::internal("decoding event data", e))?;
    let name = event_type.as_str().to_owned();
    let unit = data.as_object().is_some_and(|m| m.is_empty());
    let tagged = Value::Object([(name.clone(), data)].into_iter().collect());
    match serde_json::from_value(tagged) {
        Ok(event) => Ok(event),
        Err(_) if unit => serde_json::from_value(Value::String(name))
            .map_err(|e| StoreError::internal(format!("decoding a {event_type} event"), e)),
        Err(e) => Err(StoreError::internal(
            format!("decoding a {event_type} event"),
            e,
        )),
    }
}
