//! Secrets of a Messenger integration, in types whose `Debug` never shows them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps the secret.
            pub fn new(secret: impl Into<String>) -> Self {
                $name(SecretString::from(secret.into()))
            }

            /// The secret itself.
            ///
            /// # Security Warning
            ///
            /// Do not log, print or store what this returns: it grants access to the Page or
            /// the app. It is exposed only to build requests and check signatures.
            pub fn secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// A Page access token: sends as the Page.
    PageAccessToken
);
secret_type!(
    /// The app secret: signs webhook bodies (`X-Hub-Signature-256`) and proves API calls
    /// (`appsecret_proof`).
    AppSecret
);
secret_type!(
    /// The verify token configured for the webhook subscription handshake.
    VerifyToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let shown = format!(
            "{:?} {:?} {:?}",
            PageAccessToken::new("EAAB-page-token"),
            AppSecret::new("0123456789abcdef"),
            VerifyToken::new("s3cret-verify")
        );
        assert_eq!(
            shown,
            "PageAccessToken([redacted]) AppSecret([redacted]) VerifyToken([redacted])"
        );
        assert_eq!(AppSecret::new("x").secret(), "x");
    }
}
