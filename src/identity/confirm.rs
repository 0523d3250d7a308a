//! Asking before a link that moves history: "Connect this Messenger to a***@example.org?"
//!
//! A connect token is a bearer token: whoever taps the link uses it. A person who taps a
//! link meant for someone else (forwarded to them, or sent on purpose) would link their
//! Messenger to that other account and, if they were auto-registered, see their conversation
//! merged into it. So before a link that would move history (merging an auto-registered
//! contact into the link's account) or replace a link (moving an address from one real
//! contact to another), [`Connector::on_referral`] answers [`ConnectOutcome::Confirm`] with a
//! [`LinkQuestion`]: the Hub sends it as a message with Yes and No choices whose payloads are
//! signed answers, and links nothing until the answer.
//!
//! [`Connector::on_answer`] takes the answer back:
//!
//! | answer | outcome |
//! |---|---|
//! | Yes, from the address asked, while the link is valid | the link is made as it would have been without the question (the token is used now) |
//! | No | [`ConnectOutcome::Declined`]: nothing changes, and the token is used up |
//! | a second tap on either (a double tap) | the first answer stands: Yes twice is [`ConnectOutcome::AlreadyLinked`], anything after a No is refused as [`Refusal::AlreadyUsed`] |
//! | an answer after the link's lifetime | [`Refusal::Expired`] |
//! | an altered or forged answer | [`Refusal::Tampered`] |
//! | an answer sent from another address than the one asked | [`Refusal::OtherAddress`] |
//!
//! When to ask is the policy's [`ConfirmLinks`]: always, when history would move (the
//! default), or never.

use std::{fmt, time::Duration};

use super::{ConnectOutcome, Connector, Refusal};
use crate::{
    contact::{Address, Contact, ContactId},
    error::StoreError,
    token::{Claims, Purpose, TokenError},
};

/// The prefix of a signed answer to a link question, so that the Hub tells one apart from
/// any other choice payload without checking a signature.
pub const ANSWER_PREFIX: &str = "tdc1.";

/// When the person is asked before a link is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfirmLinks {
    /// Before every link.
    Always,
    /// Before a link that would merge an auto-registered contact's history into the link's
    /// account, or move an address from one real contact to another.
    #[default]
    WhenHistoryMoves,
    /// Never: a valid link links at once.
    Never,
}

impl ConfirmLinks {
    /// Whether a link making `change` is asked about first.
    pub fn asks(self, change: &LinkChange) -> bool {
        match self {
            ConfirmLinks::Always => true,
            ConfirmLinks::WhenHistoryMoves => !matches!(change, LinkChange::Link),
            ConfirmLinks::Never => false,
        }
    }
}

/// What a link would change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkChange {
    /// Link an address no contact has.
    Link,
    /// Merge the auto-registered contact the address belongs to (and its history) into the
    /// link's account.
    Merge {
        /// The auto-registered contact.
        technical: ContactId,
    },
    /// Move the address from one real contact to another.
    Relink {
        /// The contact it is linked to now.
        from: ContactId,
    },
}

/// The question to ask before a link; see the [module docs](self).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct LinkQuestion {
    /// The account the link would connect to.
    pub contact: Contact,
    /// What the link would change.
    pub change: LinkChange,
    /// The payload of the Yes choice: a signed answer, valid for the link's lifetime, from the
    /// address asked only.
    pub yes: String,
    /// The payload of the No choice.
    pub no: String,
}

impl fmt::Debug for LinkQuestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkQuestion")
            .field("contact", &self.contact.id)
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}

impl LinkQuestion {
    /// How the account is named in the question: its e-mail address masked after the first
    /// character (`a***@example.org`), so that a person who got someone else's link learns
    /// whose it is without learning the address; `None` when the contact has none.
    pub fn account_hint(&self) -> Option<String> {
        self.contact.email.as_deref().map(mask_email)
    }
}

/// `ann@example.org` as `a***@example.org`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Whether `payload` is (meant to be) an answer to a link question.
pub fn is_link_answer(payload: &str) -> bool {
    payload.starts_with(ANSWER_PREFIX)
}

const YES: &str = "yes";
const NO: &str = "no";

impl Connector {
    /// The question for linking `from` to `target` with the token of `claims`.
    pub(super) fn question(
        &self,
        from: &Address,
        claims: &Claims,
        target: Contact,
        change: LinkChange,
    ) -> Result<LinkQuestion, StoreError> {
        let ttl = claims
            .expires_at()
            .saturating_duration_since(self.clock.now())
            .max(Duration::from_secs(1));
        let answer = |choice: &str| -> Result<String, StoreError> {
            let data = format!("{choice}\n{}\n{from}", claims.nonce());
            let token = self
                .tokens
                .issue_with_data(&Purpose::CONNECT_CONFIRM, target.id.as_str(), ttl, &data)
                .map_err(StoreError::backend)?;
            Ok(format!("{ANSWER_PREFIX}{}", token.expose_secret()))
        };
        Ok(LinkQuestion {
            yes: answer(YES)?,
            no: answer(NO)?,
            contact: target,
            change,
        })
    }

    /// Takes the answer `payload` to a link question, chosen by `from`; `None` when the payload
    /// is no answer to a link question (see [`is_link_answer`]). See the
    /// [module docs](self) for what each answer does.
    pub async fn on_answer(
        &self,
        from: &Address,
        payload: &str,
    ) -> Result<Option<ConnectOutcome>, StoreError> {
        let Some(token) = payload.strip_prefix(ANSWER_PREFIX) else {
            return Ok(None);
        };
        let refuse = |r| Ok(Some(ConnectOutcome::Refused(r)));
        let claims = match self.tokens.verify(token, &Purpose::CONNECT_CONFIRM) {
            Ok(claims) => claims,
            Err(TokenError::Expired { .. }) => return refuse(Refusal::Expired),
            Err(_) => return refuse(Refusal::Tampered),
        };
        let mut parts = claims.data().splitn(3, '\n');
        let (Some(choice), Some(nonce), Some(asked)) = (parts.next(), parts.next(), parts.next())
        else {
            return refuse(Refusal::Tampered);
        };
        if asked != from.to_string() {
            return refuse(Refusal::OtherAddress);
        }
        let Ok(target_id) = ContactId::new(claims.subject()) else {
            return refuse(Refusal::UnknownContact);
        };
        let Some(target) = self.directory.get(&target_id).await? else {
            return refuse(Refusal::UnknownContact);
        };
        let now = self.clock.now();
        let ttl = claims
            .expires_at()
            .saturating_duration_since(now)
            .max(Duration::from_secs(1));
        let claim = format!("connect:{nonce}");
        match choice {
            YES => Ok(Some(self.use_token(from, target, &claim, now, ttl).await?)),
            NO => {
                if !self.seen.mark_seen(&claim, now, ttl).await? {
                    // Answered before (Yes, or No): the first answer stands.
                    return Ok(Some(match self.directory.find_by_address(from).await? {
                        Some(contact) if contact.id == target.id => {
                            ConnectOutcome::AlreadyLinked { contact }
                        }
                        _ => ConnectOutcome::Refused(Refusal::AlreadyUsed),
                    }));
                }
                tracing::info!(%from, contact = %target.id, "link declined");
                Ok(Some(ConnectOutcome::Declined { contact: target.id }))
            }
            _ => refuse(Refusal::Tampered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_are_masked_after_their_first_character() {
        assert_eq!(mask_email("ann@example.org"), "a***@example.org");
        assert_eq!(mask_email("é@x.fr"), "é***@x.fr");
        assert_eq!(mask_email("@x.fr"), "***@x.fr");
        assert_eq!(mask_email("nobody"), "***");
    }

    #[test]
    fn only_history_moves_are_asked_about_by_default() {
        let merge = LinkChange::Merge {
            technical: ContactId::new("c1").unwrap(),
        };
        assert!(ConfirmLinks::default().asks(&merge));
        assert!(!ConfirmLinks::default().asks(&LinkChange::Link));
        assert!(ConfirmLinks::Always.asks(&LinkChange::Link));
        assert!(!ConfirmLinks::Never.asks(&merge));
    }
}
