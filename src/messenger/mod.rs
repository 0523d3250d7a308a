//! The Facebook Messenger transport (feature `messenger`).
//!
//! | piece | module |
//! |---|---|
//! | Page settings and how they are found | [`pages`] |
//! | secrets that never print | [`secret`] |

pub mod pages;
pub mod secret;

pub use pages::{PageConfig, PageResolver, StaticPages};
pub use secret::{AppSecret, PageAccessToken, VerifyToken};
