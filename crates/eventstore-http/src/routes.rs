//! The routes of the contract, matched on the percent-encoded request path.

use eventstore_core::{Category, EventType, StreamId, ValidationError};
use lambda_http::http::Method;
use percent_encoding::percent_decode_str;

/// Which function a route belongs to. IAM gives each function only what its routes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Write,
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Append(StreamId),
    PutSnapshot(StreamId),
    GetSnapshot(StreamId),
    ReadStream(StreamId),
    StreamInfo(StreamId),
    ReadAll,
    ReadType(EventType),
    ReadCategory(Category),
    ProjectionStatus(String),
    ProjectionRow(String, String),
    PutSubscription(String),
    GetSubscription(String),
}

impl Route {
    pub fn side(&self) -> Side {
        match self {
            Self::Append(_) | Self::PutSnapshot(_) | Self::PutSubscription(_) => Side::Write,
            _ => Side::Read,
        }
    }

    /// The route template, for logs and metrics (never the ids themselves).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Append(_) => "POST /streams/{streamId}/events",
            Self::PutSnapshot(_) => "PUT /streams/{streamId}/snapshot",
            Self::GetSnapshot(_) => "GET /streams/{streamId}/snapshot",
            Self::ReadStream(_) => "GET /streams/{streamId}/events",
            Self::StreamInfo(_) => "GET /streams/{streamId}",
            Self::ReadAll => "GET /all/events",
            Self::ReadType(_) => "GET /types/{eventType}/events",
            Self::ReadCategory(_) => "GET /categories/{category}/events",
            Self::ProjectionStatus(_) => "GET /projections/{name}",
            Self::ProjectionRow(..) => "GET /projections/{name}/{key}",
            Self::PutSubscription(_) => "PUT /subscriptions/{name}",
            Self::GetSubscription(_) => "GET /subscriptions/{name}",
        }
    }
}

/// Decodes a path segment. Every spelling of a name is normalised to its decoded form, which
/// is the one name the store, its responses, its logs and its policies use: `%41ccount-42`
/// is `Account-42`. Refusing other spellings is not possible behind API Gateway, whose HTTP
/// APIs hand the function the path already decoded.
fn decode(segment: &str, field: &str) -> Result<String, ValidationError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ValidationError::new(field, "is not valid percent-encoded UTF-8"))
}

fn projection(segment: &str) -> Result<String, ValidationError> {
    let name = decode(segment, "name")?;
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(name)
    } else {
        Err(ValidationError::new(
            "name",
            "must be 1 to 64 characters of [a-z0-9-]",
        ))
    }
}

fn row_key(segment: &str) -> Result<String, ValidationError> {
    let key = decode(segment, "key")?;
    if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "key",
            "must be 1 to 1024 bytes with no control characters",
        ));
    }
    Ok(key)
}

fn subscription(segment: &str) -> Result<String, ValidationError> {
    // Subscription names follow the event type rules: [A-Za-z0-9_.:-], 1 to 128.
    Ok(EventType::parse(&decode(segment, "name")?, "name")?
        .as_str()
        .to_owned())
}

/// `Ok(None)` when no route matches; `Err` when one matches but a path parameter is invalid.
pub fn match_route(method: &Method, path: &str) -> Result<Option<Route>, ValidationError> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let stream = |s: &str| StreamId::parse(&decode(s, "streamId")?, "streamId");
    let route = match (method, segments.as_slice()) {
        (&Method::POST, ["streams", id, "events"]) => Route::Append(stream(id)?),
        (&Method::GET, ["streams", id, "events"]) => Route::ReadStream(stream(id)?),
        (&Method::PUT, ["streams", id, "snapshot"]) => Route::PutSnapshot(stream(id)?),
        (&Method::GET, ["streams", id, "snapshot"]) => Route::GetSnapshot(stream(id)?),
        (&Method::GET, ["streams", id]) => Route::StreamInfo(stream(id)?),
        (&Method::GET, ["all", "events"]) => Route::ReadAll,
        (&Method::GET, ["types", t, "events"]) => {
            Route::ReadType(EventType::parse(&decode(t, "eventType")?, "eventType")?)
        }
        (&Method::GET, ["categories", c, "events"]) => {
            Route::ReadCategory(Category::parse(&decode(c, "category")?, "category")?)
        }
        (&Method::GET, ["projections", name]) => Route::ProjectionStatus(projection(name)?),
        (&Method::GET, ["projections", name, key]) => {
            Route::ProjectionRow(projection(name)?, row_key(key)?)
        }
        (&Method::PUT, ["subscriptions", name]) => Route::PutSubscription(subscription(name)?),
        (&Method::GET, ["subscriptions", name]) => Route::GetSubscription(subscription(name)?),
        _ => return Ok(None),
    };
    Ok(Some(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Option<Route> {
        match_route(&method, path).unwrap()
    }

    #[test]
    fn every_contract_route_matches() {
        let id = StreamId::parse("Order-1", "s").unwrap();
        assert_eq!(
            route(Method::POST, "/streams/Order-1/events"),
            Some(Route::Append(id.clone()))
        );
        assert_eq!(
            route(Method::GET, "/streams/Order-1/events"),
            Some(Route::ReadStream(id.clone()))
        );
        assert_eq!(
            route(Method::GET, "/streams/Order-1"),
            Some(Route::StreamInfo(id))
        );
        assert_eq!(route(Method::GET, "/all/events"), Some(Route::ReadAll));
        assert!(
            matches!(route(Method::GET, "/types/A.B/events"), Some(Route::ReadType(t)) if t.as_str() == "A.B")
        );
        assert!(
            matches!(route(Method::GET, "/categories/Order/events"), Some(Route::ReadCategory(c)) if c.as_str() == "Order")
        );
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        let r = route(Method::GET, "/streams/a%2Fb%20c%C3%A9/events");
        assert!(matches!(r, Some(Route::ReadStream(s)) if s.as_str() == "a/b cé"));
        let r = route(Method::GET, "/types/Order.Placed%3Av2/events");
        assert!(matches!(r, Some(Route::ReadType(t)) if t.as_str() == "Order.Placed:v2"));
    }

    #[test]
    fn every_spelling_of_a_name_is_normalised_to_its_decoded_form() {
        for (path, id) in [
            ("/streams/%41ccount%2D42/events", "Account-42"),
            ("/streams/Account%2d42/events", "Account-42"),
            ("/streams/a%2fb/events", "a/b"),
            ("/streams/a:b/events", "a:b"),
            ("/streams/a%3Ab/events", "a:b"),
        ] {
            assert!(
                matches!(route(Method::GET, path), Some(Route::ReadStream(s)) if s.as_str() == id),
                "{path}"
            );
        }
        let r = route(Method::GET, "/types/A%3Av2/events");
        assert!(matches!(r, Some(Route::ReadType(t)) if t.as_str() == "A:v2"));
    }

    #[test]
    fn unknown_paths_and_methods_match_nothing() {
        assert_eq!(route(Method::GET, "/"), None);
        assert_eq!(route(Method::DELETE, "/streams/x"), None);
        assert_eq!(route(Method::PUT, "/streams/x/events"), None);
        assert_eq!(route(Method::GET, "/streams/x/events/"), None);
        assert_eq!(route(Method::POST, "/all/events"), None);
    }

    #[test]
    fn invalid_path_parameters_name_their_field() {
        for (path, field) in [
            ("/streams//events", "streamId"),
            ("/streams/%24all/events", "streamId"),
            ("/streams/a%0Ab", "streamId"),
            ("/streams/%FF/events", "streamId"),
            ("/types/bad%20type/events", "eventType"),
            ("/categories/a-b/events", "category"),
            ("/streams/-x/events", "streamId"),
        ] {
            let err = match_route(&Method::GET, path).unwrap_err();
            assert_eq!(err.field, field, "{path}");
        }
    }
}
