//! The handlers, one module per API namespace.

pub(crate) mod health;
pub(crate) mod node;
pub(crate) mod ops;
pub(crate) mod tx;
pub(crate) mod ui;
pub(crate) mod wallet;
