//! What the SQL stores share, whatever the dialect: how the crate's types sit in columns
//! ([`codec`]) and how a segment becomes a `WHERE` condition ([`segment`], one translation
//! with the few dialect differences named in one place), and how a refused conditional write
//! is explained ([`refusal`]).

pub(crate) mod codec;
pub(crate) mod refusal;
pub(crate) mod seen;
pub(crate) mod segment;
pub(crate) mod small;
