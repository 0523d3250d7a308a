//! Ready axum routers (feature `axum`): the Messenger webhook over the [`Hub`](crate::hub::Hub).
//!
//! A router is generic over the host's state `S`, so the host nests it under its own path and
//! wraps it in its own middleware:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tidings::{axum::WebhookRouter, hub::Hub, messenger::Webhook};
//!
//! # fn app(hub: Arc<Hub>, webhook: Arc<Webhook>) -> axum::Router {
//! axum::Router::new().nest("/webhook", WebhookRouter::new(hub, webhook).into_router())
//! # }
//! ```

mod desk;
mod webhook;

pub use desk::{DEFAULT_API_BASE, DeskPage, desk_router};
pub use webhook::{WebhookObserver, WebhookRouter};
