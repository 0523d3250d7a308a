//! [`TransportSet`]: transports by channel, for services that answer on the channel a contact
//! used or that an agent ticked.

use std::fmt;

use super::SharedTransport;
use crate::contact::Channel;

/// At most one transport per channel, in the order added. A later transport for a channel
/// replaces the earlier one.
#[derive(Clone, Default)]
pub struct TransportSet {
    transports: Vec<SharedTransport>,
}

impl TransportSet {
    /// An empty set.
    pub fn new() -> Self {
        TransportSet::default()
    }

    /// Adds `transport`, replacing the one for the same channel if any.
    pub fn insert(&mut self, transport: SharedTransport) {
        self.transports
            .retain(|t| t.channel() != transport.channel());
        self.transports.push(transport);
    }

    /// The transport for `channel`.
    pub fn get(&self, channel: &Channel) -> Option<&SharedTransport> {
        self.transports.iter().find(|t| t.channel() == channel)
    }

    /// The transports, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &SharedTransport> {
        self.transports.iter()
    }

    /// How many transports the set holds.
    pub fn len(&self) -> usize {
        self.transports.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.transports.is_empty()
    }
}

impl fmt::Debug for TransportSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.transports.iter().map(|t| t.channel().to_string()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::transport::stub::StubTransport;

    #[test]
    fn one_transport_per_channel_the_latest_wins() {
        let mut set = TransportSet::new();
        let first: SharedTransport = Arc::new(StubTransport::new(Channel::Email));
        let second: SharedTransport = Arc::new(StubTransport::new(Channel::Email));
        set.insert(Arc::new(StubTransport::new(Channel::Messenger)));
        set.insert(first);
        set.insert(second.clone());
        assert_eq!(set.len(), 2);
        assert!(
            set.get(&Channel::Email)
                .is_some_and(|t| Arc::ptr_eq(t, &second))
        );
        assert!(set.get(&Channel::custom("sms").unwrap()).is_none());
        assert_eq!(format!("{set:?}"), r#"["messenger", "email"]"#);
    }
}
