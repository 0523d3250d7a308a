-- tidings PostgreSQL schema, version 1: every store trait of the crate, as SQLite's schema
-- version 6 has them. Times are milliseconds since the Unix epoch (Timestamp::as_millis). An
-- address without a scope stores scope '' (an Address never has an empty scope), so uniqueness
-- needs no NULLs. Text that is ordered or compared by keyset uses the "C" collation: byte order,
-- as Rust compares strings, whatever the database's locale.

-- Directory -----------------------------------------------------------------------------------
CREATE TABLE contacts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    email       TEXT COLLATE "C",
    first_name  TEXT COLLATE "C",
    last_name   TEXT COLLATE "C",
    fields      JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object')
);

CREATE TABLE contact_addresses (
    -- Link order: Contact::addresses lists addresses in this order.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  TEXT COLLATE "C" NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    -- One contact per linked address.
    UNIQUE (channel, scope, address)
);
CREATE INDEX contact_addresses_by_contact ON contact_addresses (contact_id, channel);

CREATE TABLE contact_tags (
    contact_id  TEXT COLLATE "C" NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_by_tag ON contact_tags (tag, contact_id);

-- Store-assigned contact ids c1, c2, ...: a sequence, so that concurrent creates of several
-- processes never wait for each other or take the same number.
CREATE SEQUENCE contact_ids;

-- Last inbound message per address ------------------------------------------------------------
CREATE TABLE last_inbound (
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (channel, scope, address)
);

-- Inbox ---------------------------------------------------------------------------------------
CREATE TABLE inbox_entries (
    -- Recording order; the entry id is 'e' || seq.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    incoming    BOOLEAN NOT NULL,
    channel     TEXT,
    message_id  TEXT,
    event_key   TEXT,
    -- The EntryContent as JSON; delivery statuses live in inbox_deliveries.
    content     TEXT NOT NULL
);
-- Idempotent incoming entries: one per (channel, transport message id) and one per (channel,
-- inbound event key).
CREATE UNIQUE INDEX inbox_incoming_once ON inbox_entries (channel, message_id)
    WHERE incoming AND message_id IS NOT NULL;
CREATE UNIQUE INDEX inbox_incoming_event_once ON inbox_entries (channel, event_key)
    WHERE incoming AND event_key IS NOT NULL;
CREATE INDEX inbox_conversation ON inbox_entries (contact_id, at DESC, seq DESC);

CREATE TABLE inbox_deliveries (
    entry_seq   BIGINT NOT NULL REFERENCES inbox_entries(seq) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    contact_id  TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    -- 0 sent, 1 delivered, 2 read, 3 refused, 4 failed (the order statuses advance in).
    status      SMALLINT NOT NULL,
    PRIMARY KEY (entry_seq, position)
);
CREATE INDEX inbox_deliveries_up_to ON inbox_deliveries (contact_id, channel, at)
    WHERE status < 2;

CREATE TABLE inbox_message_ids (
    channel     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    entry_seq   BIGINT NOT NULL REFERENCES inbox_entries(seq) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    PRIMARY KEY (channel, message_id, entry_seq, position)
);
CREATE INDEX inbox_message_ids_by_entry ON inbox_message_ids (entry_seq);

-- The agents' read mark per conversation (unread counts).
CREATE TABLE inbox_read_marks (
    contact_id  TEXT COLLATE "C" PRIMARY KEY,
    up_to       BIGINT NOT NULL
);

-- Reactions and edits, addressed to their target by the transport's message id, so that one
-- recorded before its target shows once the target is recorded.
CREATE TABLE inbox_annotations (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  TEXT COLLATE "C" NOT NULL,
    channel     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    event_key   TEXT,
    -- The Annotation as JSON.
    content     TEXT NOT NULL
);
CREATE UNIQUE INDEX inbox_annotation_once ON inbox_annotations (channel, event_key)
    WHERE event_key IS NOT NULL;
CREATE INDEX inbox_annotations_by_target ON inbox_annotations (contact_id, channel, message_id, at, seq);

-- Outbox --------------------------------------------------------------------------------------
CREATE TABLE campaign_outcomes (
    campaign    TEXT COLLATE "C" NOT NULL,
    contact_id  TEXT COLLATE "C" NOT NULL,
    pending     BOOLEAN NOT NULL,
    -- The Outcome as JSON.
    outcome     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    -- One outcome per (campaign, recipient).
    PRIMARY KEY (campaign, contact_id)
);
CREATE INDEX campaign_outcomes_by_contact ON campaign_outcomes (contact_id);

-- Process instances ---------------------------------------------------------------------------
CREATE TABLE process_instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    flow        TEXT NOT NULL,
    contact_id  TEXT COLLATE "C" NOT NULL,
    active      BOOLEAN NOT NULL,
    due_at      BIGINT,
    revision    BIGINT NOT NULL,
    -- The ProcessInstance as JSON (revision excepted: the column is the truth).
    instance    TEXT NOT NULL
);
-- One unfinished instance per (contact, flow).
CREATE UNIQUE INDEX process_one_active ON process_instances (contact_id, flow) WHERE active;
CREATE INDEX process_due ON process_instances (due_at, id) WHERE active AND due_at IS NOT NULL;
CREATE INDEX process_instances_by_contact ON process_instances (contact_id);

-- Seen events ---------------------------------------------------------------------------------
CREATE TABLE seen_events (
    key         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL,
    -- A claim (held until its lease ends) or a settled mark (handled).
    settled     BOOLEAN NOT NULL
);
CREATE INDEX seen_events_expiry ON seen_events (expires_at);

-- Notification opt-ins (Marketing Messages): one per (contact, channel, topic) ------------------
CREATE TABLE opt_ins (
    contact_id  TEXT COLLATE "C" NOT NULL,
    channel     TEXT NOT NULL,
    -- The topic, '' when the opt-in named none.
    topic       TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    -- The NotificationOptIn as JSON (it holds the token).
    optin       TEXT NOT NULL,
    PRIMARY KEY (contact_id, channel, topic)
);

-- Who owns each conversation thread, as thread-control and standby events last said ------------
CREATE TABLE thread_owners (
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    -- The ThreadOwner as JSON.
    owner       TEXT NOT NULL,
    since       BIGINT NOT NULL,
    PRIMARY KEY (channel, scope, address)
);

-- Messenger Pages -----------------------------------------------------------------------------
CREATE TABLE messenger_pages (
    page_id      TEXT PRIMARY KEY,
    access_token TEXT NOT NULL,
    username     TEXT
);
