//! The adapter between EZchain and the Malachite BFT engine. Every engine type stays inside this
//! module (DESIGN §5): the rest of the node talks to it through protocol-crate types.

pub mod app;
pub mod codec;
pub mod context;
pub mod engine;
pub mod signing;
pub mod streaming;
