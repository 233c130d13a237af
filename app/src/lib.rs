//! The deployed app: what it registers with the event store, in one place. Every entry point
//! (the five Lambda functions, the local server, the CLI) is built from [`registry`] through
//! the composition root, `eventstore_dynamodb::Components`.
//!
//! To run your own app on the store, replace the bank example here with your projections
//! and upcasters; nothing else changes.
#![forbid(unsafe_code)]

use eventstore_core::{builtin, Registry};

/// The bank example's `account-balances` with the upcasters of its events (the projector
/// upcasts before projecting; reads upcast when a request asks), and the built-in
/// `category-streams`.
pub fn registry() -> Registry {
    let mut registry = bank_account::registry();
    registry.projections.extend(builtin::all());
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_deployed_app_registers_every_projection_once() {
        let registry = super::registry();
        let names: Vec<&str> = registry.projections.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["account-balances", "category-streams"]);
    }
}
