//! What the SQL stores share, whatever the dialect: how the crate's types sit in columns
//! ([`codec`]) and how a segment becomes a `WHERE` condition ([`segment`], one translation
//! with the few dialect differences named in one place).

pub(crate) mod codec;
pub(crate) mod segment;
