//! The crate-wide [`Error`], re-exported as `tidings::Error`. It sits apart from
//! [`crate::error`] (which every store imports) because it names every module's error: kept
//! there, it made a circle of modules importing each other.

use crate::error::{InvalidId, StoreError};

/// Any error of this crate: every public error type converts into it (`?` works in a host
/// function returning `tidings::Error`), and it says what the inner error says: its
/// `Display` and `source()` are the inner error's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid contact, contact id, channel or address.
    #[error(transparent)]
    Contact(#[from] crate::contact::ContactError),
    /// An invalid message.
    #[error(transparent)]
    Message(#[from] crate::message::MessageError),
    /// A signing key or key ring could not be made.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// A token that could not be issued or was refused.
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    /// An invalid segment filter.
    #[error(transparent)]
    Segment(#[from] crate::segment::SegmentError),
    /// A transport could not deliver a message.
    #[error(transparent)]
    Delivery(#[from] crate::transport::DeliveryError),
    /// An invalid flow, instance, campaign or entry id.
    #[error(transparent)]
    Id(#[from] InvalidId),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening the stores of a database URL failed.
    #[cfg(any(feature = "memory", feature = "sqlite", feature = "postgres"))]
    #[error(transparent)]
    Open(#[from] crate::store::OpenError),
    /// A process operation failed.
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    /// A flow could not be defined.
    #[error(transparent)]
    FlowDefinition(#[from] crate::process::DefineError),
    /// A flow's JSON could not be read.
    #[error(transparent)]
    FlowJson(#[from] crate::process::flow::FlowJsonError),
    /// An answer payload was refused.
    #[error(transparent)]
    Payload(#[from] crate::process::payload::PayloadError),
    /// No route of a fallback delivered the message.
    #[error(transparent)]
    Undelivered(#[from] crate::transport::fallback::Undelivered),
    /// The Hub could not handle a request.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// A support reply failed.
    #[error(transparent)]
    Support(#[from] crate::inbox::SupportError),
    /// A campaign run stopped.
    #[error(transparent)]
    Campaign(#[from] crate::newsletter::CampaignError),
    /// A campaign could not be built.
    #[error(transparent)]
    CampaignDefinition(#[from] crate::newsletter::campaign::CampaignDefinitionError),
    /// Login links could not be set up or made.
    #[error(transparent)]
    LoginLink(#[from] crate::newsletter::login::LoginLinkError),
    /// A login link was refused.
    #[error(transparent)]
    Login(#[from] crate::newsletter::login::LoginRefusal),
    /// A connect link or event was refused.
    #[error(transparent)]
    Connect(#[from] crate::identity::Refusal),
    /// A template could not be parsed.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// A template could not be rendered for a contact.
    #[error(transparent)]
    Render(#[from] crate::template::RenderError),
    /// A webhook request was refused.
    #[cfg(feature = "messenger")]
    #[error(transparent)]
    Webhook(#[from] crate::messenger::webhook::WebhookError),
    /// The Messenger Send API failed.
    #[cfg(feature = "messenger")]
    #[error(transparent)]
    Messenger(#[from] crate::messenger::MessengerError),
    /// The Messenger transport could not be built.
    #[cfg(feature = "messenger")]
    #[error(transparent)]
    MessengerBuild(#[from] crate::messenger::client::BuildError),
    /// A message could not be rendered for Messenger.
    #[cfg(feature = "messenger")]
    #[error(transparent)]
    MessengerRender(#[from] crate::messenger::render::MessengerRenderError),
    /// The e-mail transport could not be built.
    #[cfg(feature = "email")]
    #[error(transparent)]
    EmailBuild(#[from] crate::email::BuildError),
    /// The SQLite stores could not be opened.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    SqliteOpen(#[from] crate::store::sqlite::OpenError),
    /// The PostgreSQL stores could not be opened.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    PostgresOpen(#[from] crate::store::postgres::OpenError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_error_says_what_the_inner_error_says() {
        use std::error::Error as _;
        let inner = StoreError::backend(std::io::Error::other("disk on fire"));
        let wrapped = Error::from(StoreError::backend(std::io::Error::other("disk on fire")));
        assert_eq!(wrapped.to_string(), inner.to_string());
        assert_eq!(
            wrapped.source().map(ToString::to_string),
            inner.source().map(ToString::to_string)
        );
        let message = crate::message::Message::text("").unwrap_err();
        let said = message.to_string();
        assert_eq!(Error::from(message).to_string(), said);
        assert_ne!(said, "invalid message", "the reason is in the text");
        // Errors of the services convert too.
        let support = crate::inbox::SupportError::UnknownContact(
            crate::contact::ContactId::new("c9").unwrap(),
        );
        let said = support.to_string();
        assert_eq!(Error::from(support).to_string(), said);
        assert!(said.contains("c9"), "{said}");
    }
}
