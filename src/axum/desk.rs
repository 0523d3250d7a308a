//! The support desk page served at `/`: see [`DeskPage`].

use axum::{
    Router,
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const HTML: &str = include_str!("desk/index.html");
const CSS: &str = include_str!("desk/desk.css");
const JS: &str = include_str!("desk/desk.js");

/// Where the agent API is mounted when nothing else is said: `/api`.
pub const DEFAULT_API_BASE: &str = "/api";

/// The support desk page: one self-contained HTML document (CSS and JavaScript inlined, no
/// CDN, no build step) that agents open in a browser. It talks only to the agent API, with the
/// agent's bearer token, which it asks for once and keeps in the tab's `sessionStorage`.
///
/// It lists conversations newest activity first with unread counts; shows a conversation's
/// messages with time and direction and, under each outgoing one, every transport it went
/// through and its status (sent, delivered, read, refused or failed with the reason), updated
/// live from the agent API's event stream; replies through the ticked transports (one checkbox
/// per transport that reaches the contact, "facebook" for Messenger, with the API's note);
/// starts flows, makes connect links, and runs and follows campaigns with a progress bar and
/// the final report.
///
/// # Security
///
/// The page puts every user-supplied string into the DOM as text (`textContent`), never as
/// markup, and makes links only of `http`/`https` URLs, so a message such as
/// `<img src=x onerror=alert(1)>` or a `javascript:` URL is shown literally. It is served with
/// a Content-Security-Policy that allows exactly its own inline script and style (by SHA-256
/// hash), requests to its own origin, and nothing else (no other script, no inline event
/// handler, no frame, no form submission), as the second wall. The token never goes into a URL.
///
/// ```
/// use tidings::axum::DeskPage;
///
/// // The agent API nested at /api, the page at / (the default):
/// let app: axum::Router = axum::Router::new().merge(DeskPage::new().into_router());
/// // Or under the host's own prefix:
/// let app: axum::Router =
///     axum::Router::new().nest("/support", DeskPage::new().api_base("/support/api").into_router());
/// ```
#[derive(Debug, Clone)]
pub struct DeskPage {
    api_base: String,
}

impl Default for DeskPage {
    fn default() -> Self {
        DeskPage::new()
    }
}

impl DeskPage {
    /// The page, calling the agent API under [`DEFAULT_API_BASE`].
    pub fn new() -> Self {
        DeskPage {
            api_base: DEFAULT_API_BASE.to_owned(),
        }
    }

    /// Calls the agent API under `base` (an absolute path on the page's origin, such as
    /// `/support/api`; a trailing `/` is dropped).
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.api_base = base.trim_end_matches('/').to_owned();
        self
    }

    /// The page as HTML, with its Content-Security-Policy.
    fn render(&self) -> (String, String) {
        let page = HTML
            .replace("{{API_BASE}}", &escape_attribute(&self.api_base))
            .replace("/*{{CSS}}*/", CSS)
            .replace("/*{{JS}}*/", JS);
        let policy = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_source(JS),
            sha256_source(CSS),
        );
        (page, policy)
    }

    /// A router serving the page at `/` (nest or merge it where the host wants it).
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let (page, policy) = self.render();
        // The policy is built from hashes (base64) and fixed text: always a valid header value.
        let policy = HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
        let page = Bytes::from(page);
        Router::new().route(
            "/",
            get(move || {
                let response = serve(page.clone(), policy.clone());
                async move { response }
            }),
        )
    }
}

/// The support desk page at `/`, calling the agent API under `/api`:
/// `DeskPage::new().into_router()`.
pub fn desk_router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    DeskPage::new().into_router()
}

fn serve(page: Bytes, policy: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, policy),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        page,
    )
        .into_response()
}

/// A CSP hash source for an inline element's exact text.
fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `text` made safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_inlines_its_assets_once_and_names_their_hashes() {
        let (page, policy) = DeskPage::new().render();
        assert_eq!(page.matches(JS).count(), 1);
        assert_eq!(page.matches(CSS).count(), 1);
        for placeholder in ["{{API_BASE}}", "/*{{CSS}}*/", "/*{{JS}}*/"] {
            assert!(!page.contains(placeholder), "{placeholder} is filled");
        }
        assert!(page.contains(r#"<meta name="tidings-api" content="/api">"#));
        assert!(policy.contains(&format!("script-src '{}'", sha256_source(JS))));
        assert!(policy.contains("default-src 'none'"));
    }

    #[test]
    fn the_inlined_script_and_style_cannot_close_their_elements() {
        // An inlined asset that contained its closing tag would end the element early.
        assert!(!JS.to_ascii_lowercase().contains("</script"));
        assert!(!CSS.to_ascii_lowercase().contains("</style"));
    }

    #[test]
    fn the_api_base_is_escaped_into_its_attribute() {
        let (page, _) = DeskPage::new()
            .api_base(r#"/x"><script>alert(1)</script>/"#)
            .render();
        assert!(page.contains(r#"content="/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;""#));
        let (page, _) = DeskPage::new().api_base("/support/api/").render();
        assert!(page.contains(r#"content="/support/api""#));
    }
}
