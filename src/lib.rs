//! Warren: an AMQP 0-9-1 message broker that stock RabbitMQ clients use unchanged.
//!
//! Data flows one way: `protocol` splits bytes into frames, `server` runs
//! connections and channels, `broker` routes messages through exchanges into
//! queues and dispatches them to consumers.

pub mod auth;
pub mod broker;
pub mod config;
pub mod ctl;
pub mod error;
pub mod management;
pub mod protocol;
pub mod run;
pub mod server;
pub mod store;
pub mod testing;
