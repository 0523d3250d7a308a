//! What a campaign sends, to whom, over which transports, and for what purpose.
//!
//! A [`Campaign`] is checked when it is built: the text template compiles, links are valid,
//! the transport list is not empty and has no repeats. It is then run by a
//! [`CampaignRunner`](super::CampaignRunner), which can run it again after a crash or a stop
//! without sending twice.
//!
//! # Purpose and policy
//!
//! A campaign is [`Intent::Promotional`] unless it declares another purpose with
//! [`CampaignBuilder::purpose`]. Transports apply their own policy to it: the Messenger
//! transport sends a promotional message only inside the 24-hour window, and a message of a
//! tag-backed purpose ([`Intent::AccountUpdate`], [`Intent::PostPurchase`],
//! [`Intent::ConfirmedEvent`]) outside it too. A recipient a transport refuses for policy falls
//! to the next transport of the campaign (e-mail, say), or is skipped with
//! [`SkipReason::WindowClosed`](super::SkipReason::WindowClosed).

use std::fmt;

use super::{CampaignId, login::LoginLinks};
use crate::{
    contact::{Channel, Contact},
    message::{Link, MessageError},
    segment::Segment,
    template::{CampaignVars, Template, TemplateError},
    transport::Intent,
};

/// The tag that opts a contact out of campaigns unless configured otherwise.
pub const OPT_OUT_TAG: &str = "unsubscribed";

/// Why a campaign could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignDefinitionError {
    /// The text template does not compile.
    #[error("campaign text: {0}")]
    Template(#[from] TemplateError),
    /// A link (URL button) is invalid.
    #[error("campaign link: {0}")]
    Link(#[from] MessageError),
    /// No transport was given.
    #[error("a campaign needs at least one transport")]
    NoChannels,
    /// The opt-out segment reads activity (`active_within`), which a campaign cannot evaluate
    /// per recipient.
    #[error("the opt-out segment must not use active_within")]
    OptOutReadsActivity,
    /// A transport's channel appears twice.
    #[error("channel {0} appears twice in the campaign's transports")]
    DuplicateChannel(Channel),
}

/// A newsletter (or a notification) ready to run. See the [module docs](self).
#[derive(Clone)]
pub struct Campaign {
    pub(crate) id: CampaignId,
    pub(crate) segment: Segment,
    pub(crate) text: Template,
    pub(crate) links: Vec<Link>,
    pub(crate) vars: CampaignVars,
    pub(crate) channels: Vec<Channel>,
    pub(crate) intent: Intent,
    pub(crate) login: Option<LoginLinks>,
    pub(crate) opt_out: Option<Segment>,
}

impl fmt::Debug for Campaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Campaign")
            .field("id", &self.id)
            .field("channels", &self.channels)
            .field("intent", &self.intent)
            .field("login_links", &self.login.is_some())
            .finish_non_exhaustive()
    }
}

impl Campaign {
    /// A newsletter `id` to `segment` with the text template `text`.
    ///
    /// Defaults: Messenger then e-mail, promotional, contacts tagged [`OPT_OUT_TAG`] skipped.
    pub fn builder(id: CampaignId, segment: Segment, text: impl Into<String>) -> CampaignBuilder {
        CampaignBuilder {
            id,
            segment,
            text: text.into(),
            links: Vec::new(),
            vars: None,
            channels: vec![Channel::Messenger, Channel::Email],
            intent: Intent::Promotional,
            login: None,
            opt_out: Segment::tag(OPT_OUT_TAG).ok(),
        }
    }

    /// A notification `id` for one contact at a time (a payment received, a lesson opened),
    /// sent with [`CampaignRunner::send_one`](super::CampaignRunner::send_one).
    ///
    /// The id is the notification's idempotency key: make it unique per event
    /// (`payment-<payment id>`), so a repeated call for the same event sends nothing and a new
    /// event is not mistaken for an old one.
    ///
    /// Defaults: Messenger then e-mail, [`Intent::Update`], no opt-out (set a purpose such as
    /// [`Intent::PostPurchase`] so Messenger may send outside the 24-hour window).
    pub fn notification(id: CampaignId, text: impl Into<String>) -> CampaignBuilder {
        let mut builder = Campaign::builder(id, Segment::everyone(), text);
        builder.intent = Intent::Update;
        builder.opt_out = None;
        builder
    }

    /// The campaign's id.
    pub fn id(&self) -> &CampaignId {
        &self.id
    }

    /// Who it goes to.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The transports' channels, in order of preference.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Why it is sent.
    pub fn intent(&self) -> Intent {
        self.intent
    }

    /// Whether `contact` opted out of this campaign.
    pub fn opted_out(&self, contact: &Contact) -> bool {
        self.opt_out.as_ref().is_some_and(|s| s.matches(contact))
    }
}

/// Builds a [`Campaign`]; see [`Campaign::builder`].
#[derive(Debug)]
#[must_use]
pub struct CampaignBuilder {
    id: CampaignId,
    segment: Segment,
    text: String,
    links: Vec<(String, Option<String>)>,
    vars: Option<CampaignVars>,
    channels: Vec<Channel>,
    intent: Intent,
    login: Option<LoginLinks>,
    opt_out: Option<Segment>,
}

impl CampaignBuilder {
    /// Adds a link shown as a URL button where the transport has buttons.
    pub fn link(mut self, url: impl Into<String>, title: Option<&str>) -> Self {
        self.links.push((url.into(), title.map(str::to_owned)));
        self
    }

    /// Variables every recipient's render sees as `campaign.*`.
    pub fn vars(mut self, vars: CampaignVars) -> Self {
        self.vars = Some(vars);
        self
    }

    /// The transports' channels, in order of preference (default Messenger, then e-mail).
    pub fn channels(mut self, channels: impl IntoIterator<Item = Channel>) -> Self {
        self.channels = channels.into_iter().collect();
        self
    }

    /// Why the campaign is sent (default [`Intent::Promotional`]).
    pub fn purpose(mut self, intent: Intent) -> Self {
        self.intent = intent;
        self
    }

    /// Rewrites links to allowed hosts into login links.
    pub fn login_links(mut self, links: LoginLinks) -> Self {
        self.login = Some(links);
        self
    }

    /// Skips contacts matching `segment` as opted out (default: tagged [`OPT_OUT_TAG`]);
    /// `None` skips nobody.
    pub fn opt_out(mut self, segment: Option<Segment>) -> Self {
        self.opt_out = segment;
        self
    }

    /// Checks and builds the campaign.
    pub fn build(self) -> Result<Campaign, CampaignDefinitionError> {
        let text = Template::compile(&self.text)?;
        if self.opt_out.as_ref().is_some_and(Segment::reads_activity) {
            return Err(CampaignDefinitionError::OptOutReadsActivity);
        }
        let links = self
            .links
            .into_iter()
            .map(|(url, title)| Link::new(&url, title))
            .collect::<Result<Vec<_>, _>>()?;
        if self.channels.is_empty() {
            return Err(CampaignDefinitionError::NoChannels);
        }
        for (i, channel) in self.channels.iter().enumerate() {
            if self.channels[..i].contains(channel) {
                return Err(CampaignDefinitionError::DuplicateChannel(channel.clone()));
            }
        }
        Ok(Campaign {
            id: self.id,
            segment: self.segment,
            text,
            links,
            vars: self.vars.unwrap_or_default(),
            channels: self.channels,
            intent: self.intent,
            login: self.login,
            opt_out: self.opt_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ContactId;

    fn id() -> CampaignId {
        CampaignId::new("c").unwrap()
    }

    #[test]
    fn definitions_are_checked_when_built() {
        let ok = Campaign::builder(id(), Segment::everyone(), "Hi {{ first_name }}")
            .link("https://school.example/x", Some("Open"))
            .build()
            .unwrap();
        assert_eq!(ok.channels(), [Channel::Messenger, Channel::Email]);
        assert_eq!(ok.intent(), Intent::Promotional);
        assert!(matches!(
            Campaign::builder(id(), Segment::everyone(), "Hi {{ first_name").build(),
            Err(CampaignDefinitionError::Template(TemplateError::Syntax {
                line: 1,
                ..
            }))
        ));
        assert!(matches!(
            Campaign::builder(id(), Segment::everyone(), "x")
                .link("not a url", None)
                .build(),
            Err(CampaignDefinitionError::Link(_))
        ));
        assert!(matches!(
            Campaign::builder(id(), Segment::everyone(), "x")
                .channels([])
                .build(),
            Err(CampaignDefinitionError::NoChannels)
        ));
        assert!(matches!(
            Campaign::builder(id(), Segment::everyone(), "x")
                .channels([Channel::Email, Channel::Email])
                .build(),
            Err(CampaignDefinitionError::DuplicateChannel(Channel::Email))
        ));
        assert!(matches!(
            Campaign::builder(id(), Segment::everyone(), "x")
                .opt_out(Segment::active_within(Channel::Messenger, 24).ok())
                .build(),
            Err(CampaignDefinitionError::OptOutReadsActivity)
        ));
    }

    #[test]
    fn the_opt_out_tag_is_honoured_by_newsletters_not_notifications() {
        let mut contact = Contact::new(ContactId::new("a").unwrap());
        contact.tags.insert(OPT_OUT_TAG.into());
        let newsletter = Campaign::builder(id(), Segment::everyone(), "x")
            .build()
            .unwrap();
        assert!(newsletter.opted_out(&contact));
        let notification = Campaign::notification(id(), "x").build().unwrap();
        assert!(!notification.opted_out(&contact));
        assert_eq!(notification.intent(), Intent::Update);
    }
}
