//! What an app registers with the store: its projections and its upcasters, in one value
//! that every entry point (the Lambda functions, the local server, the CLI) is built from.

use std::sync::Arc;

use crate::{Projection, Upcasters};

/// An app's projections and upcasters.
#[derive(Clone, Default)]
pub struct Registry {
    /// Read models the projector keeps, each under its unique name.
    pub projections: Vec<Arc<dyn Projection>>,
    /// Applied to events before projections see them, and by reads that ask for it.
    pub upcasters: Upcasters,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        f.debug_struct("Registry")
            .field("projections", &names)
            .field("upcasters", &self.upcasters)
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a projection.
    pub fn projection(mut self, projection: impl Projection + 'static) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// Sets the upcasters.
    pub fn upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }
}
