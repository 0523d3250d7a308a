-- tidings SQLite schema, version 1: every store trait of the crate.
-- Times are milliseconds since the Unix epoch (Timestamp::as_millis). An address without a
-- scope stores scope '' (an Address never has an empty scope), so uniqueness needs no NULLs.

-- Directory -----------------------------------------------------------------------------------
CREATE TABLE contacts (
    id          TEXT PRIMARY KEY NOT NULL,
    email       TEXT,
    first_name  TEXT,
    last_name   TEXT,
    fields      TEXT NOT NULL DEFAULT '{}' CHECK (json_type(fields) = 'object')
) WITHOUT ROWID;

CREATE TABLE contact_addresses (
    -- Link order: Contact::addresses lists addresses in this order.
    seq         INTEGER PRIMARY KEY,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    -- One contact per linked address.
    UNIQUE (channel, scope, address)
);
CREATE INDEX contact_addresses_by_contact ON contact_addresses (contact_id, channel);

CREATE TABLE contact_tags (
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
) WITHOUT ROWID;
CREATE INDEX contact_tags_by_tag ON contact_tags (tag, contact_id);

-- Counters for ids the stores assign (contacts c1, c2, ...).
CREATE TABLE id_counters (
    name        TEXT PRIMARY KEY NOT NULL,
    value       INTEGER NOT NULL
) WITHOUT ROWID;

-- Last inbound message per address ------------------------------------------------------------
CREATE TABLE last_inbound (
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (channel, scope, address)
) WITHOUT ROWID;

-- Inbox ---------------------------------------------------------------------------------------
CREATE TABLE inbox_entries (
    -- Recording order; the entry id is 'e' || seq.
    seq         INTEGER PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    incoming    INTEGER NOT NULL CHECK (incoming IN (0, 1)),
    channel     TEXT,
    message_id  TEXT,
    -- The EntryContent as JSON; delivery statuses live in inbox_deliveries.
    content     TEXT NOT NULL
);
-- Idempotent incoming entries: one per (channel, transport message id).
CREATE UNIQUE INDEX inbox_incoming_once ON inbox_entries (channel, message_id)
    WHERE incoming = 1 AND message_id IS NOT NULL;
CREATE INDEX inbox_conversation ON inbox_entries (contact_id, at, seq);

CREATE TABLE inbox_deliveries (
    entry_seq   INTEGER NOT NULL REFERENCES inbox_entries(seq) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    contact_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    -- 0 sent, 1 delivered, 2 read, 3 refused, 4 failed (the order statuses advance in).
    status      INTEGER NOT NULL,
    PRIMARY KEY (entry_seq, position)
) WITHOUT ROWID;
CREATE INDEX inbox_deliveries_up_to ON inbox_deliveries (contact_id, channel, at)
    WHERE status < 2;

CREATE TABLE inbox_message_ids (
    channel     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    entry_seq   INTEGER NOT NULL REFERENCES inbox_entries(seq) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    PRIMARY KEY (channel, message_id, entry_seq, position)
) WITHOUT ROWID;
CREATE INDEX inbox_message_ids_by_entry ON inbox_message_ids (entry_seq);

-- Outbox --------------------------------------------------------------------------------------
CREATE TABLE campaign_outcomes (
    campaign    TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    pending     INTEGER NOT NULL CHECK (pending IN (0, 1)),
    -- The Outcome as JSON.
    outcome     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    -- One outcome per (campaign, recipient).
    PRIMARY KEY (campaign, contact_id)
) WITHOUT ROWID;
CREATE INDEX campaign_outcomes_by_contact ON campaign_outcomes (contact_id);

-- Process instances ---------------------------------------------------------------------------
CREATE TABLE process_instances (
    id          TEXT PRIMARY KEY NOT NULL,
    flow        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    due_at      INTEGER,
    revision    INTEGER NOT NULL,
    -- The ProcessInstance as JSON (revision excepted: the column is the truth).
    instance    TEXT NOT NULL
) WITHOUT ROWID;
-- One unfinished instance per (contact, flow).
CREATE UNIQUE INDEX process_one_active ON process_instances (contact_id, flow) WHERE active = 1;
CREATE INDEX process_due ON process_instances (due_at, id) WHERE active = 1 AND due_at IS NOT NULL;

-- Seen events ---------------------------------------------------------------------------------
CREATE TABLE seen_events (
    key         TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_events_expiry ON seen_events (expires_at);

-- Messenger Pages -----------------------------------------------------------------------------
CREATE TABLE messenger_pages (
    page_id      TEXT PRIMARY KEY NOT NULL,
    access_token TEXT NOT NULL,
    username     TEXT
) WITHOUT ROWID;
