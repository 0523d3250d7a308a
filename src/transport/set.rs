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

impl Extend<SharedTransport> for TransportSet {
    /// Adds each transport as [`insert`](TransportSet::insert) does.
    fn extend<I: IntoIterator<Item = SharedTransport>>(&mut self, transports: I) {
        for transport in transports {
            self.insert(transport);
        }
    }
}

impl FromIterator<SharedTransport> for TransportSet {
    /// A set of the transports, a later one for a channel replacing an earlier.
    fn from_iter<I: IntoIterator<Item = SharedTransport>>(transports: I) -> Self {
        let mut set = TransportSet::new();
        set.extend(transports);
        set
    }
}

impl IntoIterator for TransportSet {
    type Item = SharedTransport;
    type IntoIter = std::vec::IntoIter<SharedTransport>;

    /// The transports, in the order added.
    fn into_iter(self) -> Self::IntoIter {
        self.transports.into_iter()
    }
}

impl<'a> IntoIterator for &'a TransportSet {
    type Item = &'a SharedTransport;
    type IntoIter = std::slice::Iter<'a, SharedTransport>;

    /// The transports, in the order added.
    fn into_iter(self) -> Self::IntoIter {
        self.transports.iter()
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
        set.insert(first.clone());
        set.insert(second.clone());
        assert_eq!(set.len(), 2);
        assert!(
            set.get(&Channel::Email)
                .is_some_and(|t| Arc::ptr_eq(t, &second))
        );
        assert!(set.get(&Channel::custom("sms").unwrap()).is_none());
        assert_eq!(format!("{set:?}"), r#"["messenger", "email"]"#);
        // Collecting and extending follow the same rule, and iteration keeps the order.
        let collected: TransportSet = set.clone().into_iter().chain([first.clone()]).collect();
        assert!(
            collected
                .get(&Channel::Email)
                .is_some_and(|t| Arc::ptr_eq(t, &first))
        );
        let channels: Vec<String> = (&collected)
            .into_iter()
            .map(|t| t.channel().to_string())
            .collect();
        assert_eq!(channels, ["messenger", "email"]);
    }
}
