//! [`NoProjections`]: the projection store of an app that keeps none, so that code generic
//! over a store (the HTTP API) can be built without one.

use std::collections::BTreeSet;

use serde_json::Value;

use super::port::{
    Commit, CommitLimits, Parked, ParkedEvent, ProjectionStore, Slot, SubscriptionStore,
};
use super::{Checkpoint, RowId, Rows};
use crate::StoreError;

/// No projection store at all. It has no values, so no engine over it can be built; an
/// `Option` of such an engine is always `None`.
#[derive(Debug, Clone, Copy)]
pub enum NoProjections {}

impl ProjectionStore for NoProjections {
    fn limits(&self) -> CommitLimits {
        match *self {}
    }

    fn row_size(&self, _: &str, _: u64, _: &RowId, _: Option<&Value>) -> Result<usize, StoreError> {
        match *self {}
    }

    async fn checkpoint(&self, _: &Slot) -> Result<Option<Checkpoint>, StoreError> {
        match *self {}
    }

    async fn load_rows(&self, _: &str, _: u64, _: &BTreeSet<RowId>) -> Result<Rows, StoreError> {
        match *self {}
    }

    async fn commit(
        &self,
        _: &Slot,
        _: Checkpoint,
        _: u64,
        _: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        match *self {}
    }

    async fn count_failure(&self, _: &Slot, _: Checkpoint) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn park(&self, _: &Slot, _: Checkpoint, _: &ParkedEvent) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn start_rebuild(
        &self,
        _: &str,
        _: Checkpoint,
        _: Option<u64>,
    ) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn switch(&self, _: &str, _: Checkpoint, _: Checkpoint) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn unpark(
        &self,
        _: &str,
        _: Checkpoint,
        _: u64,
        _: &[(RowId, Option<Value>)],
    ) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn parked(&self, _: &str, _: u64) -> Result<Vec<Parked>, StoreError> {
        match *self {}
    }

    async fn rows(
        &self,
        _: &str,
        _: u64,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        match *self {}
    }
}

impl SubscriptionStore for NoProjections {
    async fn subscription(&self, _: &str) -> Result<Option<u64>, StoreError> {
        match *self {}
    }

    async fn save_subscription(
        &self,
        _: &str,
        _: u64,
        _: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        match *self {}
    }
}
