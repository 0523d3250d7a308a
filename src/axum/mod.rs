//! Ready axum routers (feature `axum`): the Messenger webhook over the [`Hub`](crate::hub::Hub)
//! and the agent API a support desk talks to.
//!
//! Each router is generic over the host's state `S`, so the host nests it under its own path
//! and wraps it in its own middleware:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tidings::{
//!     axum::{AgentApi, BearerToken, WebhookRouter},
//!     hub::Hub,
//!     inbox::Support,
//!     messenger::Webhook,
//!     store::memory::{MemoryDirectory, MemoryInbox},
//! };
//!
//! # fn app(hub: Arc<Hub>, webhook: Arc<Webhook>) -> axum::Router {
//! let (directory, inbox) = (Arc::new(MemoryDirectory::new()), Arc::new(MemoryInbox::new()));
//! let support = Support::builder(directory.clone(), inbox.clone()).build();
//! let agents = AgentApi::builder(BearerToken::new("a long random token", "desk"), support, inbox, directory)
//!     .build();
//! axum::Router::new()
//!     .nest("/webhook", WebhookRouter::new(hub, webhook).observer(agents.webhook_observer()).into_router())
//!     .nest("/api", agents.router())
//! # }
//! ```

mod agent;
mod api_error;
mod auth;
mod campaigns;
mod desk;
mod live;
mod views;
mod webhook;

pub use agent::{AgentApi, AgentApiBuilder};
pub use auth::{AgentAuth, AgentIdentity, BearerToken};
pub use desk::{DEFAULT_API_BASE, DeskPage, desk_router};
pub use live::LiveEvent;
pub use webhook::{WebhookObserver, WebhookRouter};
