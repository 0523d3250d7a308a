//! `m.me` links: the way a platform user connects their Messenger.
//!
//! A link `https://m.me/<page>?ref=<token>` opens the Page's conversation; Messenger reports the
//! `ref` in a referral (existing thread) or inside the Get Started postback (new thread, which
//! needs a Get Started button: see `MessengerTransport::set_get_started`). Tokens from
//! [`Connector::connect_token`](crate::identity::Connector::connect_token) are URL-safe and short
//! enough for any ref.

use super::pages::PageConfig;
use crate::token::SignedToken;

/// The connect link of `page` (by its username if it has one, else its id) for `token`.
///
/// ```
/// use tidings::messenger::{PageAccessToken, PageConfig, link::connect_link};
/// # use tidings::{clock::{ManualClock, Timestamp}, keys::SigningKey, secrecy::SecretSlice, token::{Purpose, Tokens}};
/// # let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap());
/// # let token = tokens.issue(&Purpose::CONNECT, "user-42", std::time::Duration::from_secs(900)).unwrap();
/// let page = PageConfig::new("104812345678901", PageAccessToken::new("…")).with_username("rustschool");
/// let link = connect_link(&page, &token);
/// assert!(link.starts_with("https://m.me/rustschool?ref="));
/// ```
pub fn connect_link(page: &PageConfig, token: &SignedToken) -> String {
    let name = page.username.as_deref().unwrap_or(&page.page_id);
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    // Tokens are base64url: nothing to escape in a query value.
    format!("https://m.me/{name}?ref={}", token.expose_secret())
}
