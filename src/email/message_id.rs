//! The Message-ID header of each e-mail, which is also the receipt's message id.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::transport::{DeliveryError, SendContext};

/// A Message-ID (`<local@domain>`, RFC 5322) for one send.
///
/// With an idempotency key the id is derived from it (a SHA-256 of the key, so the key itself
/// never shows), so a retried send carries the same Message-ID and receivers that drop
/// duplicates by Message-ID drop the second copy. Without one it is 128 random bits.
pub(crate) fn message_id(ctx: &SendContext, domain: &str) -> Result<String, DeliveryError> {
    let mut bytes = [0u8; 16];
    match &ctx.idempotency_key {
        Some(key) => {
            let digest = Sha256::new()
                .chain_update(b"tidings email message-id\0")
                .chain_update(key.as_bytes())
                .finalize();
            bytes.copy_from_slice(&digest[..16]);
        }
        // getrandom's Error is a std error only with its `std` feature: carry its text.
        None => getrandom::fill(&mut bytes).map_err(|e| {
            DeliveryError::other("no randomness for a Message-ID")
                .with_source(std::io::Error::other(e.to_string()))
        })?,
    }
    let mut id = String::with_capacity(36 + domain.len());
    id.push('<');
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    id.push('@');
    id.push_str(domain);
    id.push('>');
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_without_a_key_and_stable_with_one() {
        let a = message_id(&SendContext::update(), "school.example").unwrap();
        let b = message_id(&SendContext::update(), "school.example").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@school.example>"), "{a}");
        assert_eq!(a.len(), "<@school.example>".len() + 32);

        let keyed = SendContext::update().with_idempotency_key("campaign-7:contact-42");
        let c = message_id(&keyed, "school.example").unwrap();
        assert_eq!(c, message_id(&keyed, "school.example").unwrap());
        assert!(!c.contains("contact-42"));
        let other = SendContext::update().with_idempotency_key("campaign-7:contact-43");
        assert_ne!(c, message_id(&other, "school.example").unwrap());
    }
}
