//! Query strings: each parameter at most once, numbers within their bounds.

use std::collections::BTreeMap;

use std::time::Duration;

use eventstore_core::limits::{DEFAULT_READ_LIMIT, MAX_POSITION, MAX_READ_LIMIT};
use eventstore_core::{Direction, StreamRead, ValidationError, MAX_READ_WAIT};

use super::json::invalid;

/// Query parameters, each at most once.
pub struct Query(BTreeMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Self, ValidationError> {
        let mut map = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(invalid(key.to_string(), "must be given at most once"));
            }
        }
        Ok(Self(map))
    }

    fn integer(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ValidationError> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        text.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| invalid(name, format!("must be a whole number from {min} to {max}")))
    }

    pub fn from(&self) -> Result<Option<u64>, ValidationError> {
        self.integer("from", 1, MAX_POSITION)
    }

    pub fn limit(&self) -> Result<usize, ValidationError> {
        let limit = self.integer("limit", 1, MAX_READ_LIMIT as u64)?;
        Ok(limit.map_or(DEFAULT_READ_LIMIT, |l| l as usize))
    }

    /// `wait`: seconds a global read may hold on for an event at `from` (long polling);
    /// 0 to 25, default 0.
    pub fn wait(&self) -> Result<Duration, ValidationError> {
        let wait = self.integer("wait", 0, MAX_READ_WAIT.as_secs())?;
        Ok(Duration::from_secs(wait.unwrap_or(0)))
    }

    /// `after`: the item to continue after, for projection rows.
    pub fn after(&self) -> Option<&str> {
        self.0.get("after").map(String::as_str)
    }

    /// `upcast=true` asks for events brought up to their newest schema; default false.
    pub fn upcast(&self) -> Result<bool, ValidationError> {
        match self.0.get("upcast").map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(invalid("upcast", "must be \"true\" or \"false\"")),
        }
    }

    pub fn stream_read(&self) -> Result<StreamRead, ValidationError> {
        let direction = match self.0.get("direction").map(String::as_str) {
            None | Some("forward") => Direction::Forward,
            Some("backward") => Direction::Backward,
            Some(_) => return Err(invalid("direction", "must be \"forward\" or \"backward\"")),
        };
        Ok(StreamRead {
            from: self.from()?,
            direction,
            limit: self.limit()?,
        })
    }
}
