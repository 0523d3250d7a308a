//! What a contact did to a message after it was written: reactions and edits, recorded on the
//! entry they target.
//!
//! An [`Annotation`] names its target by the transport's message id, not by an entry id, so it
//! can be recorded before its target is (transports do not promise order: a reaction can
//! arrive before the message it reacts to) and shows on the entry once the target is
//! recorded. The target is the entry of the same contact's conversation whose transport id
//! on that channel is the annotation's: an incoming message's id, or one of the ids an
//! outgoing message was sent under.

use serde::{Deserialize, Serialize};

use crate::{clock::Timestamp, contact::Channel, message::ReactionAction};

/// A reaction or an edit, as the transport reported it, addressed to a message by its
/// transport id; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Annotation {
    /// The channel of the message it targets.
    pub channel: Channel,
    /// The transport's id of the message it targets.
    pub message_id: String,
    /// When it happened (the transport's time).
    pub at: Timestamp,
    /// What it is.
    pub change: Change,
    /// The key of the inbound event it records ([`Inbound::key`]): an annotation is recorded
    /// once per key, so a redelivered event adds nothing.
    ///
    /// [`Inbound::key`]: crate::message::Inbound::key
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_key: Option<String>,
}

/// What an [`Annotation`] changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// The contact reacted to the message, or took their reaction back.
    Reaction {
        /// Added or taken back.
        action: ReactionAction,
        /// The emoji, where the transport reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
        /// The transport's name of the reaction (Messenger: `love`, `like`, ...), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The contact edited the message.
    Edit {
        /// The text as it reads after this edit.
        text: String,
        /// Which edit this is (1 for the first), as the transport counts them.
        edit_count: u32,
    },
}

impl Annotation {
    /// An annotation of the message `message_id` on `channel`, made at `at`.
    pub fn new(
        channel: Channel,
        message_id: impl Into<String>,
        at: Timestamp,
        change: Change,
    ) -> Self {
        Annotation {
            channel,
            message_id: message_id.into(),
            at,
            change,
            event_key: None,
        }
    }

    /// Sets the key of the inbound event it records.
    pub fn with_event_key(mut self, key: impl Into<String>) -> Self {
        self.event_key = Some(key.into());
        self
    }
}

/// The reaction a message carries now: the latest reaction annotation, unless it took the
/// reaction back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reaction<'a> {
    /// The emoji, where the transport reported it.
    pub emoji: Option<&'a str>,
    /// The transport's name of the reaction, if any.
    pub name: Option<&'a str>,
    /// When it was made.
    pub at: Timestamp,
}

/// One edit of a message, from [`Entry::edits`](super::Entry::edits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Edit<'a> {
    /// The text after the edit.
    pub text: &'a str,
    /// Which edit it is (1 for the first).
    pub edit_count: u32,
    /// When it was made.
    pub at: Timestamp,
}

/// The reaction `annotations` (in time order) leave on their message.
pub(crate) fn current_reaction(annotations: &[Annotation]) -> Option<Reaction<'_>> {
    annotations.iter().rev().find_map(|a| match &a.change {
        Change::Reaction {
            action: ReactionAction::React,
            emoji,
            name,
        } => Some(Some(Reaction {
            emoji: emoji.as_deref(),
            name: name.as_deref(),
            at: a.at,
        })),
        Change::Reaction { .. } => Some(None),
        Change::Edit { .. } => None,
    })?
}

/// The edits among `annotations`, by edit count (the transport's order, which survives
/// redeliveries out of order), then time.
pub(crate) fn edits(annotations: &[Annotation]) -> Vec<Edit<'_>> {
    let mut edits: Vec<Edit<'_>> = annotations
        .iter()
        .filter_map(|a| match &a.change {
            Change::Edit { text, edit_count } => Some(Edit {
                text,
                edit_count: *edit_count,
                at: a.at,
            }),
            Change::Reaction { .. } => None,
        })
        .collect();
    edits.sort_by_key(|e| (e.edit_count, e.at));
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaction(at: i64, action: ReactionAction, emoji: &str) -> Annotation {
        Annotation::new(
            Channel::Messenger,
            "m1",
            Timestamp::from_millis(at),
            Change::Reaction {
                action,
                emoji: Some(emoji.into()),
                name: None,
            },
        )
    }

    #[test]
    fn the_latest_reaction_counts_and_taking_it_back_leaves_none() {
        let mut notes = vec![reaction(1, ReactionAction::React, "❤")];
        assert_eq!(current_reaction(&notes).unwrap().emoji, Some("❤"));
        notes.push(reaction(2, ReactionAction::React, "👍"));
        assert_eq!(current_reaction(&notes).unwrap().emoji, Some("👍"));
        notes.push(reaction(3, ReactionAction::Unreact, "👍"));
        assert_eq!(current_reaction(&notes), None);
        notes.push(Annotation::new(
            Channel::Messenger,
            "m1",
            Timestamp::from_millis(4),
            Change::Edit {
                text: "x".into(),
                edit_count: 1,
            },
        ));
        assert_eq!(current_reaction(&notes), None, "an edit is no reaction");
    }

    #[test]
    fn edits_read_in_the_transports_count_order() {
        let edit = |at, n: u32| {
            Annotation::new(
                Channel::Messenger,
                "m1",
                Timestamp::from_millis(at),
                Change::Edit {
                    text: format!("v{n}"),
                    edit_count: n,
                },
            )
        };
        let notes = [edit(5, 2), edit(4, 1)];
        let texts: Vec<&str> = edits(&notes).iter().map(|e| e.text).collect();
        assert_eq!(texts, ["v1", "v2"]);
    }
}
