//! In-memory stores: every store trait, safe to share across tasks.
//!
//! Each store is a plain struct behind a mutex; share it as `Arc<Store>` or as the trait object
//! the crate asks for. Nothing is persisted.
//!
//! | store | implements |
//! |---|---|
//! | [`MemoryDirectory`] | [`Directory`](crate::identity::Directory), [`SegmentQuery`](crate::segment::SegmentQuery) |
//! | [`MemoryInbox`] | [`Inbox`](crate::inbox::Inbox) |
//! | [`MemoryOutbox`] | [`Outbox`](crate::newsletter::Outbox) |
//! | [`MemoryProcessStore`] | [`ProcessStore`](crate::process::ProcessStore) |
//! | [`MemorySeenEvents`] | [`SeenEvents`](crate::seen::SeenEvents) |
//! | [`MemoryLastInbound`] | [`LastInbound`](crate::activity::LastInbound) |
//! | [`MemoryOptIns`] | [`OptIns`](crate::optin::OptIns) |
//! | [`MemoryThreadOwners`] | [`ThreadOwners`](crate::threads::ThreadOwners) |
//! | [`MemoryCampaignBatches`] | [`CampaignBatches`](crate::newsletter::batches::CampaignBatches) |

mod activity;
mod batches;
mod directory;
mod inbox;
mod optin;
mod outbox;
mod process;
mod seen;
mod threads;

pub use activity::MemoryLastInbound;
pub use batches::MemoryCampaignBatches;
pub use directory::MemoryDirectory;
pub use inbox::MemoryInbox;
pub use optin::MemoryOptIns;
pub use outbox::MemoryOutbox;
pub use process::MemoryProcessStore;
pub use seen::MemorySeenEvents;
pub use threads::MemoryThreadOwners;
