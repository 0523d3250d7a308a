//! Forgetting a contact: one call erases what every store of the crate holds about them (the
//! GDPR's right to erasure).
//!
//! [`Erasure::forget`] removes, through the store traits (so the crate's memory and SQLite
//! stores and a host's own stores alike):
//!
//! | store | what goes | through |
//! |---|---|---|
//! | [`Directory`] | the contact (name, e-mail, fields, tags) and every address linked to it | [`Directory::forget_contact`] |
//! | [`LastInbound`] | when each of those addresses last wrote | [`LastInbound::forget`] |
//! | [`Inbox`] | the whole conversation, delivery records and transport message ids included | [`Inbox::forget_contact`] |
//! | [`Outbox`] | the contact's outcome in every campaign, pending claims included | [`Outbox::forget_contact`] |
//! | [`ProcessStore`] | every flow instance, finished ones included (their history holds the answers) | [`ProcessStore::forget_contact`] |
//! | [`OptIns`] (given with [`Erasure::with_opt_ins`]) | every notification opt-in, tokens included | [`OptIns::forget_contact`] |
//! | [`ThreadOwners`] (given with [`Erasure::with_thread_owners`]) | who owns each of the addresses' threads | [`ThreadOwners::forget`] |
//!
//! It returns an [`ErasureReport`] of how much went from each; the report holds counts only,
//! no identifier of the person, so it can be kept as a record that the request was carried out.
//!
//! ```
//! use std::sync::Arc;
//! use tidings::{
//!     contact::{Address, NewContact},
//!     erasure::Erasure,
//!     identity::Directory,
//!     store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemoryOutbox, MemoryProcessStore},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = Arc::new(MemoryDirectory::new());
//! let erasure = Erasure::new(
//!     directory.clone(),
//!     Arc::new(MemoryInbox::new()),
//!     Arc::new(MemoryOutbox::new()),
//!     Arc::new(MemoryProcessStore::new()),
//!     Arc::new(MemoryLastInbound::new()),
//! );
//! let ann = directory
//!     .create(NewContact::new().with_address(Address::email("ann@example.org")?))
//!     .await?;
//!
//! let report = erasure.forget(&ann.id).await?;
//! assert!(report.contact_found);
//! assert_eq!(report.addresses, 1);
//! assert_eq!(directory.get(&ann.id).await?, None);
//! // Running it again is safe and finds nothing more.
//! assert!(erasure.forget(&ann.id).await?.nothing_removed());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # Order, and running it again
//!
//! The contact is read first, for its addresses; then the data that depends on it goes
//! (activity of each address, the conversation, campaign outcomes, flow instances); the
//! directory record goes **last**. A run that fails or is killed halfway therefore leaves the
//! contact in the directory with its addresses, and running [`Erasure::forget`] again finishes
//! the job: every step is idempotent, and a step that finds nothing counts 0. Retry until it
//! returns `Ok`; a run after a complete erasure returns a report with
//! [`contact_found`](ErasureReport::contact_found) `false` and every count 0.
//!
//! The steps that go by contact id (inbox, outbox, flows) run even when the directory has no
//! such contact, so a contact whose record is already gone, or one the host keeps in a
//! directory of its own, still loses the rest.
//!
//! # Work running at the same time
//!
//! Erasure takes no lock on the contact. After the directory record is gone, the steps that
//! go by contact id run once more, to remove what other tasks wrote for the contact while the
//! erasure ran (an inbound message routed before the address was unlinked, a campaign send or
//! a flow step in flight). A task that still holds the contact after that (a campaign that read
//! them in a segment page before the erasure and records its outcome after it) can write one
//! more record: erase when no campaign is running, or run the erasure again after it.
//!
//! # What stays, and whose it is
//!
//! - **Seen events** ([`SeenEvents`](crate::seen::SeenEvents)) are de-duplication marks,
//!   not records about a person: keys are transport message ids (`messenger:<mid>`) and token
//!   nonces, which hold no name, text or contact id; they expire after their time to live (by
//!   default 48 hours for webhook events, a token's lifetime) and
//!   [`purge_expired`](crate::seen::SeenEvents::purge_expired) removes them. One exception: the
//!   Messenger transport keys a webhook event without a message id (a delivery or read
//!   receipt, a referral, a postback without one) by the Page id, the sender's page-scoped id
//!   and a time. The memory store keeps only a keyed fingerprint of each key; the SQLite store
//!   keeps keys as they are until they are purged, so call `purge_expired` periodically.
//! - Addresses unlinked from the contact before the erasure ([`Directory::unlink`]) are no
//!   longer tied to them, and their [`LastInbound`] records are not found: forget them with
//!   [`LastInbound::forget`] when unlinking, if they matter.
//! - Counters and Page settings (store-assigned id counters, Messenger Page tokens) are not
//!   about anyone.
//! - **The host's data is the host's**: its user table (unless it is the [`Directory`] given
//!   here), its own copies (entry ids, reports, logs, backups, exports), and stores of its own
//!   that are not among those above. So is what the transports keep: the conversation stays
//!   in the person's Messenger inbox and the Page's inbox at Meta, and e-mails in mailboxes.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    activity::LastInbound,
    contact::{Address, ContactId},
    error::StoreError,
    identity::Directory,
    inbox::Inbox,
    newsletter::Outbox,
    optin::OptIns,
    process::ProcessStore,
    threads::ThreadOwners,
};

/// How much one [`Erasure::forget`] removed from each store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ErasureReport {
    /// Whether this run removed the contact's directory record (`false` when it was already
    /// gone, or never existed).
    pub contact_found: bool,
    /// Addresses unlinked with the directory record.
    pub addresses: usize,
    /// Inbox entries removed.
    pub inbox_entries: usize,
    /// Campaign outcome records removed.
    pub outcomes: usize,
    /// Flow instances removed.
    pub flow_instances: usize,
    /// Last-inbound (activity) records removed, one per address that had one.
    pub activity_records: usize,
    /// Notification opt-ins removed.
    pub opt_ins: usize,
    /// Thread-owner records removed, one per address that had one.
    pub thread_records: usize,
}

impl ErasureReport {
    /// Whether the run found nothing to remove (what a run after a complete erasure returns).
    pub fn nothing_removed(&self) -> bool {
        *self == ErasureReport::default()
    }
}

/// Forgets contacts across every store; see the [module docs](self).
#[derive(Clone)]
pub struct Erasure {
    directory: Arc<dyn Directory>,
    inbox: Arc<dyn Inbox>,
    outbox: Arc<dyn Outbox>,
    processes: Arc<dyn ProcessStore>,
    last_inbound: Arc<dyn LastInbound>,
    opt_ins: Option<Arc<dyn OptIns>>,
    threads: Option<Arc<dyn ThreadOwners>>,
}

impl fmt::Debug for Erasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Erasure").finish_non_exhaustive()
    }
}

impl Erasure {
    /// Erasure over the stores the rest of the crate writes to: give it the same stores the
    /// Hub, the campaign runner, the flow engine and the webhook use.
    pub fn new(
        directory: Arc<dyn Directory>,
        inbox: Arc<dyn Inbox>,
        outbox: Arc<dyn Outbox>,
        processes: Arc<dyn ProcessStore>,
        last_inbound: Arc<dyn LastInbound>,
    ) -> Self {
        Erasure {
            directory,
            inbox,
            outbox,
            processes,
            last_inbound,
            opt_ins: None,
            threads: None,
        }
    }

    /// Erases the contact's notification opt-ins too: give it the store the Hub records them
    /// in ([`HubBuilder::opt_ins`](crate::hub::HubBuilder::opt_ins)).
    pub fn with_opt_ins(mut self, store: Arc<dyn OptIns>) -> Self {
        self.opt_ins = Some(store);
        self
    }

    /// Erases who owns the threads of the contact's addresses too: give it the store the Hub
    /// records them in ([`HubBuilder::thread_owners`](crate::hub::HubBuilder::thread_owners)).
    pub fn with_thread_owners(mut self, store: Arc<dyn ThreadOwners>) -> Self {
        self.threads = Some(store);
        self
    }

    /// Removes everything the stores hold about contact `id` and reports how much went.
    ///
    /// Idempotent: after an error, run it again (see the [module docs](self) for the order that
    /// makes this safe). An unknown contact is not an error: its report says
    /// `contact_found: false`.
    pub async fn forget(&self, id: &ContactId) -> Result<ErasureReport, StoreError> {
        let mut report = ErasureReport::default();
        let addresses = self
            .directory
            .get(id)
            .await?
            .map(|c| c.addresses)
            .unwrap_or_default();
        self.forget_activity(&addresses, &mut report).await?;
        self.forget_by_id(id, &mut report).await?;
        // Last, so that until here a failed run can be run again and find the addresses.
        if let Some(contact) = self.directory.forget_contact(id).await? {
            report.contact_found = true;
            report.addresses = contact.addresses.len();
            // Addresses linked while this ran.
            let late: Vec<Address> = contact
                .addresses
                .into_iter()
                .filter(|a| !addresses.contains(a))
                .collect();
            self.forget_activity(&late, &mut report).await?;
        }
        // What other tasks wrote for the contact while this ran.
        self.forget_by_id(id, &mut report).await?;
        Ok(report)
    }

    async fn forget_activity(
        &self,
        addresses: &[Address],
        report: &mut ErasureReport,
    ) -> Result<(), StoreError> {
        for address in addresses {
            if self.last_inbound.forget(address).await? {
                report.activity_records += 1;
            }
            if let Some(threads) = &self.threads {
                if threads.forget(address).await? {
                    report.thread_records += 1;
                }
            }
        }
        Ok(())
    }

    async fn forget_by_id(
        &self,
        id: &ContactId,
        report: &mut ErasureReport,
    ) -> Result<(), StoreError> {
        report.inbox_entries += self.inbox.forget_contact(id).await?;
        report.outcomes += self.outbox.forget_contact(id).await?;
        report.flow_instances += self.processes.forget_contact(id).await?;
        if let Some(opt_ins) = &self.opt_ins {
            report.opt_ins += opt_ins.forget_contact(id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_serializes_as_counts_only() {
        let report = ErasureReport {
            contact_found: true,
            addresses: 2,
            inbox_entries: 5,
            outcomes: 1,
            flow_instances: 3,
            activity_records: 2,
            opt_ins: 1,
            thread_records: 1,
        };
        let json = serde_json::to_value(report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "contact_found": true,
                "addresses": 2,
                "inbox_entries": 5,
                "outcomes": 1,
                "flow_instances": 3,
                "activity_records": 2,
                "opt_ins": 1,
                "thread_records": 1,
            })
        );
        assert_eq!(
            serde_json::from_value::<ErasureReport>(json).unwrap(),
            report
        );
        assert!(!report.nothing_removed());
        assert!(ErasureReport::default().nothing_removed());
    }
}
