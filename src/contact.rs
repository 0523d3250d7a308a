//! Who the crate talks to: [`ContactId`], [`Channel`], [`Address`] and [`Contact`].
//!
//! These types are channel-neutral: a Messenger address is just an [`Address`] whose channel is
//! [`Channel::Messenger`], whose scope is the Page id and whose id is the page-scoped user id
//! (PSID). A PSID means nothing without its Page, so the pair is the address.
//!
//! Every constructor that takes outside input validates it and returns a [`ContactError`];
//! deserialization runs the same checks.
//!
//! ```
//! use tidings::contact::{Address, Channel, ContactId};
//!
//! let id = ContactId::new("user-42")?;
//! let fb = Address::messenger("104812345678901", "6789012345678901")?;
//! assert_eq!(fb.channel(), &Channel::Messenger);
//! assert_eq!(fb.scope(), Some("104812345678901"));
//! assert!(Address::email("not-an-email").is_err());
//! assert!("fax".parse::<Channel>().is_err());
//! assert_eq!("custom:telegram".parse::<Channel>()?, Channel::custom("telegram")?);
//! # let _ = id;
//! # Ok::<(), tidings::contact::ContactError>(())
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    str::FromStr,
};

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// Longest contact id accepted, in bytes.
pub const MAX_CONTACT_ID_LEN: usize = 255;
/// Longest address id or scope accepted, in bytes.
pub const MAX_ADDRESS_PART_LEN: usize = 512;
/// Longest custom channel name accepted, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 32;

/// Why a contact id, channel or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// The contact id is empty.
    #[error("contact id is empty")]
    EmptyContactId,
    /// The contact id is longer than [`MAX_CONTACT_ID_LEN`] bytes.
    #[error("contact id is {len} bytes long, the limit is {MAX_CONTACT_ID_LEN}")]
    ContactIdTooLong {
        /// The length that was given.
        len: usize,
    },
    /// A value contains a control character (newline, NUL, ...).
    #[error("{what} contains a control character")]
    ControlCharacter {
        /// Which value ("contact id", "address id", ...).
        what: &'static str,
    },
    /// A channel string names no known channel. Custom channels are written `custom:<name>`.
    #[error("unknown channel {0:?} (known: \"messenger\", \"email\", \"custom:<name>\")")]
    UnknownChannel(String),
    /// A custom channel name is empty, too long, or not made of `a-z`, `0-9`, `_` and `-`.
    #[error("invalid custom channel name {0:?}: use 1 to 32 of a-z, 0-9, '_' and '-'")]
    InvalidChannelName(String),
    /// The id part of an address is empty.
    #[error("address id is empty")]
    EmptyAddressId,
    /// The scope part of an address is given but empty.
    #[error("address scope is empty")]
    EmptyScope,
    /// A part of an address is longer than [`MAX_ADDRESS_PART_LEN`] bytes.
    #[error("address {what} is {len} bytes long, the limit is {MAX_ADDRESS_PART_LEN}")]
    AddressPartTooLong {
        /// Which part ("id" or "scope").
        what: &'static str,
        /// The length that was given.
        len: usize,
    },
    /// The channel needs a scope (Messenger needs the Page id) and none was given.
    #[error("a {channel} address needs a scope (for Messenger: the Page id)")]
    MissingScope {
        /// The channel of the address.
        channel: Channel,
    },
    /// The channel takes no scope and one was given.
    #[error("a {channel} address takes no scope")]
    UnexpectedScope {
        /// The channel of the address.
        channel: Channel,
    },
    /// An e-mail address is not of the form `local@domain`.
    #[error("invalid e-mail address {0:?}")]
    InvalidEmail(String),
}

fn check_no_control(value: &str, what: &'static str) -> Result<(), ContactError> {
    // Ids are nearly always ASCII, where the control characters are bytes below 0x20 and 0x7f:
    // one branch-free pass (which the compiler vectorizes) checks both; other text goes by
    // characters.
    let (mut control, mut non_ascii) = (false, false);
    for &b in value.as_bytes() {
        control |= b < 0x20 || b == 0x7f;
        non_ascii |= b >= 0x80;
    }
    let control = control || (non_ascii && value.chars().any(char::is_control));
    if control {
        Err(ContactError::ControlCharacter { what })
    } else {
        Ok(())
    }
}

/// The platform's identifier of a contact (a user of the course or membership platform).
///
/// Non-empty, at most [`MAX_CONTACT_ID_LEN`] bytes, no control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContactId(String);

impl ContactId {
    /// Validates and wraps a contact id.
    pub fn new(id: impl Into<String>) -> Result<Self, ContactError> {
        let id = id.into();
        if id.is_empty() {
            return Err(ContactError::EmptyContactId);
        }
        if id.len() > MAX_CONTACT_ID_LEN {
            return Err(ContactError::ContactIdTooLong { len: id.len() });
        }
        check_no_control(&id, "contact id")?;
        Ok(ContactId(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactId({:?})", self.0)
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContactId {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ContactId::new(value)
    }
}

impl From<ContactId> for String {
    fn from(id: ContactId) -> Self {
        id.0
    }
}

impl FromStr for ContactId {
    type Err = ContactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContactId::new(s)
    }
}

/// A kind of transport a contact can be reached on.
///
/// The text form is `messenger`, `email`, or `custom:<name>` for a host's own transport (SMS,
/// Telegram, ...). Custom channels carry the `custom:` prefix so that a channel the crate adds
/// later can never collide with a name a host already stores.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Channel {
    /// Facebook Messenger.
    Messenger,
    /// E-mail.
    Email,
    /// A transport the host brings; see [`CustomChannel`].
    Custom(CustomChannel),
}

/// The name of a host's own channel: 1 to 32 of `a-z`, `0-9`, `_` and `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomChannel(String);

impl CustomChannel {
    /// Checks and wraps a custom channel name.
    pub fn new(name: impl Into<String>) -> Result<Self, ContactError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_CHANNEL_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(CustomChannel(name))
        } else {
            Err(ContactError::InvalidChannelName(name))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CustomChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomChannel({:?})", self.0)
    }
}

impl Channel {
    /// A custom channel, after checking its name.
    pub fn custom(name: impl Into<String>) -> Result<Self, ContactError> {
        CustomChannel::new(name).map(Channel::Custom)
    }

    /// Whether addresses on this channel need a scope (Messenger: the Page id).
    pub fn requires_scope(&self) -> bool {
        matches!(self, Channel::Messenger)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Messenger => f.write_str("messenger"),
            Channel::Email => f.write_str("email"),
            Channel::Custom(name) => write!(f, "custom:{}", name.as_str()),
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({self})")
    }
}

impl FromStr for Channel {
    type Err = ContactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "messenger" => Ok(Channel::Messenger),
            "email" => Ok(Channel::Email),
            _ => match s.strip_prefix("custom:") {
                Some(name) => Channel::custom(name),
                None => Err(ContactError::UnknownChannel(s.to_owned())),
            },
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Channel> for String {
    fn from(c: Channel) -> Self {
        c.to_string()
    }
}

/// Where a contact can be reached: a channel, an optional scope, and the id within it.
///
/// - Messenger: scope = the Page id, id = the page-scoped user id (PSID).
/// - E-mail: no scope, id = the e-mail address.
/// - Custom channels: scope as the host's transport needs it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "AddressRepr")]
pub struct Address {
    channel: Channel,
    // Page ids and PSIDs (15-17 digits) fit inline: building an address for an incoming event
    // allocates nothing, and clones of longer ids share one allocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<SmolStr>,
    id: SmolStr,
}

#[derive(Deserialize)]
struct AddressRepr {
    channel: Channel,
    #[serde(default)]
    scope: Option<SmolStr>,
    id: SmolStr,
}

impl TryFrom<AddressRepr> for Address {
    type Error = ContactError;
    fn try_from(r: AddressRepr) -> Result<Self, Self::Error> {
        Address::build(r.channel, r.scope, r.id)
    }
}

fn check_part(value: &str, what: &'static str) -> Result<(), ContactError> {
    if value.len() > MAX_ADDRESS_PART_LEN {
        return Err(ContactError::AddressPartTooLong {
            what,
            len: value.len(),
        });
    }
    check_no_control(
        value,
        if what == "id" {
            "address id"
        } else {
            "address scope"
        },
    )
}

fn check_id(id: &str) -> Result<(), ContactError> {
    if id.is_empty() {
        return Err(ContactError::EmptyAddressId);
    }
    check_part(id, "id")
}

fn check_scope(scope: &str) -> Result<(), ContactError> {
    if scope.is_empty() {
        return Err(ContactError::EmptyScope);
    }
    check_part(scope, "scope")
}

/// An address scope checked once (Messenger: a Page id), for the addresses of the many events
/// of one webhook request: each then only checks and copies its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "messenger"), allow(dead_code))]
pub(crate) struct AddressScope {
    channel: Channel,
    scope: SmolStr,
}

#[cfg_attr(not(feature = "messenger"), allow(dead_code))]
impl AddressScope {
    /// `scope` on `channel`, if it is a valid address scope.
    pub(crate) fn new(channel: Channel, scope: &str) -> Result<Self, ContactError> {
        check_scope(scope)?;
        Ok(AddressScope {
            channel,
            scope: SmolStr::new(scope),
        })
    }

    /// The address of `id` in this scope: what `Address::new` gives for it.
    pub(crate) fn address(&self, id: &str) -> Result<Address, ContactError> {
        check_id(id)?;
        Ok(Address {
            channel: self.channel.clone(),
            scope: Some(self.scope.clone()),
            id: SmolStr::new(id),
        })
    }
}

impl Address {
    /// Validates and builds an address.
    pub fn new(
        channel: Channel,
        scope: Option<String>,
        id: impl Into<String>,
    ) -> Result<Self, ContactError> {
        Address::build(channel, scope.map(SmolStr::from), SmolStr::from(id.into()))
    }

    fn build(channel: Channel, scope: Option<SmolStr>, id: SmolStr) -> Result<Self, ContactError> {
        check_id(&id)?;
        match (&scope, channel.requires_scope()) {
            (Some(s), _) => check_scope(s)?,
            (None, true) => return Err(ContactError::MissingScope { channel }),
            (None, false) => {}
        }
        let mut id = id;
        if channel == Channel::Email {
            if scope.is_some() {
                return Err(ContactError::UnexpectedScope { channel });
            }
            if !is_plausible_email(&id) {
                return Err(ContactError::InvalidEmail(id.into()));
            }
            id = id.to_lowercase().into();
        }
        Ok(Address { channel, scope, id })
    }

    /// A Messenger address: the Page id and the page-scoped user id (PSID).
    pub fn messenger(
        page_id: impl AsRef<str>,
        psid: impl AsRef<str>,
    ) -> Result<Self, ContactError> {
        Address::build(
            Channel::Messenger,
            Some(SmolStr::new(page_id)),
            SmolStr::new(psid),
        )
    }

    /// An e-mail address, lowercased so that `Ann@Example.org` and `ann@example.org` are one
    /// address (mail systems treat them as one in practice).
    pub fn email(address: impl Into<String>) -> Result<Self, ContactError> {
        Address::new(Channel::Email, None, address)
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The scope (for Messenger: the Page id).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The id within the channel and scope (for Messenger: the PSID).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// `local@domain` with both sides non-empty, one `@`, no whitespace. Deliverability is the
/// mailer's business; this only refuses what cannot be an address.
fn is_plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// `channel:scope/id` or `channel:id`, for logs and messages; not a parseable form (a scope
/// may itself contain `/`). Store addresses through serde.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(scope) => write!(f, "{}:{}/{}", self.channel, scope, self.id),
            None => write!(f, "{}:{}", self.channel, self.id),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// A contact: a platform user as the crate knows them.
///
/// Stores build contacts; hosts that implement [`Directory`](crate::identity::Directory) over
/// their own database start from [`Contact::new`] and set the public fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Contact {
    /// The platform's id of the contact.
    pub id: ContactId,
    /// The contact's e-mail address, real or technical (see auto-registration).
    #[serde(default)]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Custom fields (plan, country, progress, ...), as the host defines them.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Groups and tags the contact belongs to.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// The addresses linked to this contact, in the order they were linked.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

impl Contact {
    /// A contact with the given id and nothing else.
    pub fn new(id: ContactId) -> Self {
        Contact {
            id,
            email: None,
            first_name: None,
            last_name: None,
            fields: BTreeMap::new(),
            tags: BTreeSet::new(),
            addresses: Vec::new(),
        }
    }

    /// The first linked address on `channel`, if any.
    pub fn address_on(&self, channel: &Channel) -> Option<&Address> {
        self.addresses.iter().find(|a| a.channel() == channel)
    }

    /// Whether the contact was created by auto-registration (its e-mail, if any, is a
    /// technical address that reaches nobody): the [`TECHNICAL_FIELD`] is `true`.
    pub fn is_technical(&self) -> bool {
        self.fields.get(TECHNICAL_FIELD) == Some(&serde_json::Value::Bool(true))
    }

    /// Every address the crate sends to for this contact: its linked addresses, then its
    /// e-mail ([`Contact::email`]) as an e-mail address when no e-mail address is linked and
    /// the contact is not [technical](Contact::is_technical).
    ///
    /// This is the one rule of "how is this contact reached": support replies, campaigns and
    /// flows all use it, so a person a reply can reach by e-mail is not skipped by a
    /// newsletter as having "no address".
    pub fn reachable_addresses(&self) -> Vec<Address> {
        let mut addresses = self.addresses.clone();
        if let Some(email) = self.real_email() {
            addresses.push(email);
        }
        addresses
    }

    /// The first of the [reachable addresses](Contact::reachable_addresses) on `channel`.
    pub fn reachable_on(&self, channel: &Channel) -> Option<Address> {
        match self.address_on(channel) {
            Some(address) => Some(address.clone()),
            None if *channel == Channel::Email => self.real_email(),
            None => None,
        }
    }

    /// [`Contact::email`] as an address, when no e-mail address is linked and it is real.
    fn real_email(&self) -> Option<Address> {
        if self.is_technical() || self.address_on(&Channel::Email).is_some() {
            return None;
        }
        self.email
            .as_ref()
            .and_then(|e| Address::email(e.clone()).ok())
    }
}

/// The custom field that marks a contact created by auto-registration.
pub const TECHNICAL_FIELD: &str = "tidings_technical";

/// The data of a contact to create; the store assigns the id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewContact {
    /// E-mail address, real or technical.
    #[serde(default)]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Groups and tags.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Addresses to link on creation. Creation fails with a conflict if one is already linked,
    /// which makes "create the contact for this new sender" idempotent under races.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

impl NewContact {
    /// An empty new contact.
    pub fn new() -> Self {
        NewContact::default()
    }

    /// Sets the e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets first and last name.
    pub fn with_name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = Some(last.into());
        self
    }

    /// Sets a custom field.
    pub fn with_field(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Adds an address to link on creation.
    pub fn with_address(mut self, address: Address) -> Self {
        self.addresses.push(address);
        self
    }

    /// The contact this would become under the given id.
    pub fn into_contact(self, id: ContactId) -> Contact {
        Contact {
            id,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            fields: self.fields,
            tags: self.tags,
            addresses: self.addresses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_checked_once_builds_what_address_messenger_builds() {
        let long = "9".repeat(MAX_ADDRESS_PART_LEN + 1);
        let psids = [
            "6543210987654321",
            "",
            "a\nb",
            "é\u{85}",
            long.as_str(),
            "user_ref:x",
        ];
        for page in ["104857600123456", "P"] {
            let scope = AddressScope::new(Channel::Messenger, page).unwrap();
            for psid in psids {
                assert_eq!(
                    scope.address(psid),
                    Address::messenger(page, psid),
                    "{psid:?}"
                );
            }
        }
        for page in ["", "P\u{1}", long.as_str()] {
            let refused = AddressScope::new(Channel::Messenger, page).unwrap_err();
            assert_eq!(
                Err(refused),
                Address::messenger(page, "6543210987654321"),
                "{page:?}"
            );
        }
    }

    #[test]
    fn contact_id_refuses_empty_long_and_control_characters() {
        assert_eq!(ContactId::new(""), Err(ContactError::EmptyContactId));
        assert_eq!(
            ContactId::new("x".repeat(256)),
            Err(ContactError::ContactIdTooLong { len: 256 })
        );
        // ASCII controls, DEL, and C1 controls in non-ASCII text are all refused.
        for bad in ["a\nb", "a\u{7f}", "é\u{85}", "\u{9f}é"] {
            assert!(
                matches!(
                    ContactId::new(bad),
                    Err(ContactError::ControlCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(ContactId::new("é~ü").is_ok());
        assert_eq!(
            ContactId::new("x".repeat(255)).map(|c| c.as_str().len()),
            Ok(255)
        );
    }

    #[test]
    fn contact_id_deserialization_validates() {
        assert!(serde_json::from_str::<ContactId>("\"\"").is_err());
        let id: ContactId = serde_json::from_str("\"u1\"").unwrap();
        assert_eq!(id.as_str(), "u1");
    }

    #[test]
    fn channel_text_form_round_trips() {
        for c in [
            Channel::Messenger,
            Channel::Email,
            Channel::custom("sms").unwrap(),
        ] {
            assert_eq!(c.to_string().parse::<Channel>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), c);
        }
        assert_eq!(
            serde_json::to_string(&Channel::custom("sms").unwrap()).unwrap(),
            "\"custom:sms\""
        );
    }

    #[test]
    fn unknown_or_malformed_channels_are_refused() {
        assert_eq!(
            "facebook".parse::<Channel>(),
            Err(ContactError::UnknownChannel("facebook".into()))
        );
        assert_eq!(
            "".parse::<Channel>(),
            Err(ContactError::UnknownChannel(String::new()))
        );
        assert!(matches!(
            "custom:".parse::<Channel>(),
            Err(ContactError::InvalidChannelName(_))
        ));
        assert!(matches!(
            "custom:Tele Gram".parse::<Channel>(),
            Err(ContactError::InvalidChannelName(_))
        ));
        assert!(serde_json::from_str::<Channel>("\"pigeon\"").is_err());
    }

    #[test]
    fn messenger_address_needs_its_page() {
        assert_eq!(
            Address::new(Channel::Messenger, None, "123"),
            Err(ContactError::MissingScope {
                channel: Channel::Messenger
            })
        );
        assert_eq!(Address::messenger("", "123"), Err(ContactError::EmptyScope));
        assert_eq!(
            Address::messenger("p", ""),
            Err(ContactError::EmptyAddressId)
        );
        let a = Address::messenger("p1", "u1").unwrap();
        let b = Address::messenger("p2", "u1").unwrap();
        assert_ne!(a, b, "the same PSID on two Pages is two addresses");
        assert_eq!(a.to_string(), "messenger:p1/u1");
    }

    #[test]
    fn email_addresses_are_checked_for_shape() {
        assert!(Address::email("ann@example.org").is_ok());
        assert_eq!(
            Address::email("Ann@Example.ORG"),
            Address::email("ann@example.org")
        );
        for bad in ["ann", "@example.org", "ann@", "a b@example.org", "a@b@c"] {
            assert!(
                matches!(Address::email(bad), Err(ContactError::InvalidEmail(_))),
                "{bad} accepted"
            );
        }
        assert!(matches!(
            Address::new(Channel::Email, Some("x".into()), "ann@example.org"),
            Err(ContactError::UnexpectedScope { .. })
        ));
    }

    #[test]
    fn address_deserialization_runs_the_same_checks() {
        let ok: Address =
            serde_json::from_str(r#"{"channel":"messenger","scope":"p","id":"u"}"#).unwrap();
        assert_eq!(ok, Address::messenger("p", "u").unwrap());
        for bad in [
            r#"{"channel":"messenger","id":"u"}"#,
            r#"{"channel":"fax","id":"u"}"#,
            r#"{"channel":"email","id":"nope"}"#,
            r#"{"channel":"email","id":""}"#,
        ] {
            assert!(
                serde_json::from_str::<Address>(bad).is_err(),
                "{bad} accepted"
            );
        }
        let json = serde_json::to_string(&Address::email("a@b.c").unwrap()).unwrap();
        assert_eq!(json, r#"{"channel":"email","id":"a@b.c"}"#);
    }

    #[test]
    fn oversized_address_parts_are_refused() {
        let long = "9".repeat(MAX_ADDRESS_PART_LEN + 1);
        assert!(matches!(
            Address::messenger("p", long.clone()),
            Err(ContactError::AddressPartTooLong { what: "id", .. })
        ));
        assert!(matches!(
            Address::messenger(long, "u"),
            Err(ContactError::AddressPartTooLong { what: "scope", .. })
        ));
    }
}
