//! Messenger's messaging policy: which `messaging_type` and tag a send may use.
//!
//! A Page may message a person freely for 24 hours after their last message (the standard
//! messaging window). Outside it, only a message tag opens the way, and only for what the tag
//! is for. The crate maps the core [`Intent`] onto that:
//!
//! | intent | inside 24 h | outside 24 h |
//! |---|---|---|
//! | `Reply`, `AgentReply` | `RESPONSE` | `AgentReply`: `HUMAN_AGENT` up to 7 days if enabled; else refused |
//! | `Update`, `Promotional` | `UPDATE` | refused (window closed) |
//! | `AccountUpdate` | `UPDATE` | tag `ACCOUNT_UPDATE` |
//! | `PostPurchase` | `UPDATE` | tag `POST_PURCHASE_UPDATE` |
//! | `ConfirmedEvent` | `UPDATE` | tag `CONFIRMED_EVENT_UPDATE` |
//!
//! A person never heard from is outside the window, and tags cannot reach them either (a tag
//! continues a conversation). Refusals happen before any HTTP call, as
//! [`DeliveryErrorKind::WindowClosed`](crate::transport::DeliveryErrorKind::WindowClosed).
//! `HUMAN_AGENT` needs Meta's approval of the Human Agent feature, so it is off unless
//! [`Policy::human_agent`] is set.

use std::time::Duration;

use crate::{
    clock::Timestamp,
    transport::{DeliveryError, Intent},
};

/// The standard messaging window.
pub const STANDARD_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long after the person's last message a human agent may still answer.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A message tag that still exists (the others stopped working in March 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageTag {
    /// Reminders or updates for an event the person registered for.
    ConfirmedEventUpdate,
    /// Updates about a purchase.
    PostPurchaseUpdate,
    /// Non-recurring changes to the person's account.
    AccountUpdate,
    /// A human agent's answer, up to 7 days after the person's message.
    HumanAgent,
}

impl MessageTag {
    /// The tag as the Send API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageTag::ConfirmedEventUpdate => "CONFIRMED_EVENT_UPDATE",
            MessageTag::PostPurchaseUpdate => "POST_PURCHASE_UPDATE",
            MessageTag::AccountUpdate => "ACCOUNT_UPDATE",
            MessageTag::HumanAgent => "HUMAN_AGENT",
        }
    }
}

/// The `messaging_type` (and tag) of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessagingType {
    /// A reply inside the window.
    Response,
    /// A proactive message inside the window.
    Update,
    /// A tagged message, allowed outside the window for the tag's purpose.
    Tagged(MessageTag),
}

impl MessagingType {
    /// The `messaging_type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingType::Response => "RESPONSE",
            MessagingType::Update => "UPDATE",
            MessagingType::Tagged(_) => "MESSAGE_TAG",
        }
    }

    /// The `tag` field, for tagged messages.
    pub fn tag(self) -> Option<MessageTag> {
        match self {
            MessagingType::Tagged(tag) => Some(tag),
            _ => None,
        }
    }
}

/// What the crate may send outside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Policy {
    /// Whether agent replies may use `HUMAN_AGENT` between 24 hours and 7 days (needs Meta's
    /// approval of the Human Agent feature).
    pub human_agent: bool,
}

impl Policy {
    /// The default policy: no `HUMAN_AGENT`.
    pub fn new() -> Self {
        Policy::default()
    }

    /// Allows `HUMAN_AGENT` for agent replies.
    pub fn with_human_agent(mut self, enabled: bool) -> Self {
        self.human_agent = enabled;
        self
    }

    /// Decides how a send with `intent` may go at `now`, given when the person last wrote.
    pub fn decide(
        &self,
        intent: Intent,
        last_inbound: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<MessagingType, DeliveryError> {
        let since = last_inbound.map(|t| now.saturating_duration_since(t));
        let inside = since.is_some_and(|d| d < STANDARD_WINDOW);
        let closed = |why: &str| {
            let when = match since {
                Some(d) => format!("the person last wrote {} h ago", d.as_secs() / 3600),
                None => "the person never wrote to this Page".to_owned(),
            };
            DeliveryError::window_closed(format!("{why}: {when}"))
        };
        match intent {
            Intent::Reply | Intent::AgentReply if inside => Ok(MessagingType::Response),
            Intent::AgentReply
                if self.human_agent && since.is_some_and(|d| d < HUMAN_AGENT_WINDOW) =>
            {
                Ok(MessagingType::Tagged(MessageTag::HumanAgent))
            }
            Intent::AgentReply if self.human_agent => {
                Err(closed("outside the 7-day human agent window"))
            }
            Intent::Reply | Intent::AgentReply => Err(closed("outside the 24-hour window")),
            _ if inside => Ok(MessagingType::Update),
            // Tags continue a conversation: a person who never wrote cannot be tagged to.
            Intent::AccountUpdate | Intent::PostPurchase | Intent::ConfirmedEvent
                if since.is_none() =>
            {
                Err(closed("a message tag needs an earlier conversation"))
            }
            Intent::AccountUpdate => Ok(MessagingType::Tagged(MessageTag::AccountUpdate)),
            Intent::PostPurchase => Ok(MessagingType::Tagged(MessageTag::PostPurchaseUpdate)),
            Intent::ConfirmedEvent => Ok(MessagingType::Tagged(MessageTag::ConfirmedEventUpdate)),
            _ => Err(closed("outside the 24-hour window and no message tag fits")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::DeliveryErrorKind;

    const H: u64 = 3600;

    fn decide(
        policy: Policy,
        intent: Intent,
        hours_ago: Option<u64>,
    ) -> Result<MessagingType, DeliveryErrorKind> {
        let now = Timestamp::from_secs(1_800_000_000);
        let last = hours_ago.map(|h| now.saturating_sub(Duration::from_secs(h * H)));
        policy.decide(intent, last, now).map_err(|e| e.kind())
    }

    #[test]
    fn inside_the_window_replies_respond_and_the_rest_update() {
        let p = Policy::new();
        assert_eq!(
            decide(p, Intent::Reply, Some(1)),
            Ok(MessagingType::Response)
        );
        assert_eq!(
            decide(p, Intent::AgentReply, Some(23)),
            Ok(MessagingType::Response)
        );
        for intent in [
            Intent::Update,
            Intent::Promotional,
            Intent::AccountUpdate,
            Intent::PostPurchase,
            Intent::ConfirmedEvent,
        ] {
            assert_eq!(
                decide(p, intent, Some(2)),
                Ok(MessagingType::Update),
                "{intent:?}"
            );
        }
    }

    #[test]
    fn outside_the_window_only_tags_that_fit_pass() {
        let p = Policy::new();
        let closed = Err(DeliveryErrorKind::WindowClosed);
        assert_eq!(decide(p, Intent::Reply, Some(24)), closed);
        assert_eq!(decide(p, Intent::Promotional, Some(30)), closed);
        assert_eq!(decide(p, Intent::Update, None), closed);
        assert_eq!(
            decide(p, Intent::AgentReply, Some(30)),
            closed,
            "HUMAN_AGENT is off by default"
        );
        assert_eq!(
            decide(p, Intent::AccountUpdate, Some(500)),
            Ok(MessagingType::Tagged(MessageTag::AccountUpdate))
        );
        assert_eq!(
            decide(p, Intent::PostPurchase, Some(100)),
            Ok(MessagingType::Tagged(MessageTag::PostPurchaseUpdate))
        );
        assert_eq!(
            decide(p, Intent::PostPurchase, None),
            closed,
            "a tag needs an earlier conversation"
        );
        assert_eq!(
            decide(p, Intent::ConfirmedEvent, Some(48)),
            Ok(MessagingType::Tagged(MessageTag::ConfirmedEventUpdate))
        );
    }

    #[test]
    fn human_agent_covers_seven_days_when_enabled() {
        let p = Policy::new().with_human_agent(true);
        assert_eq!(
            decide(p, Intent::AgentReply, Some(30)),
            Ok(MessagingType::Tagged(MessageTag::HumanAgent))
        );
        assert_eq!(
            decide(p, Intent::AgentReply, Some(7 * 24 - 1)),
            Ok(MessagingType::Tagged(MessageTag::HumanAgent))
        );
        assert_eq!(
            decide(p, Intent::AgentReply, Some(8 * 24)),
            Err(DeliveryErrorKind::WindowClosed)
        );
        assert_eq!(
            decide(p, Intent::Reply, Some(30)),
            Err(DeliveryErrorKind::WindowClosed),
            "automated replies never get HUMAN_AGENT"
        );
    }

    #[test]
    fn refusals_say_why() {
        let now = Timestamp::from_secs(1_800_000_000);
        let e = Policy::new()
            .decide(
                Intent::Promotional,
                Some(now.saturating_sub(Duration::from_secs(30 * H))),
                now,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "messaging window closed: outside the 24-hour window and no message tag fits: the person last wrote 30 h ago"
        );
    }
}
