-- tidings SQLite schema, version 6: reactions and edits on inbox entries, Marketing Messages
-- opt-in tokens per contact, and who owns each conversation thread.

-- Reactions and edits, addressed to their target by the transport's message id, so that one
-- recorded before its target shows once the target is recorded.
CREATE TABLE inbox_annotations (
    seq         INTEGER PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    channel     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    event_key   TEXT,
    -- The Annotation as JSON.
    content     TEXT NOT NULL
);
-- One annotation per inbound event.
CREATE UNIQUE INDEX inbox_annotation_once ON inbox_annotations (channel, event_key)
    WHERE event_key IS NOT NULL;
CREATE INDEX inbox_annotations_by_target ON inbox_annotations (contact_id, channel, message_id, at, seq);

-- Notification opt-ins (Marketing Messages): one per (contact, channel, topic).
CREATE TABLE opt_ins (
    contact_id  TEXT NOT NULL,
    channel     TEXT NOT NULL,
    -- The topic, '' when the opt-in named none.
    topic       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    -- The NotificationOptIn as JSON (it holds the token).
    optin       TEXT NOT NULL,
    PRIMARY KEY (contact_id, channel, topic)
) WITHOUT ROWID;

-- Who owns each conversation thread, as thread-control and standby events last said.
CREATE TABLE thread_owners (
    channel     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    address     TEXT NOT NULL,
    -- The ThreadOwner as JSON.
    owner       TEXT NOT NULL,
    since       INTEGER NOT NULL,
    PRIMARY KEY (channel, scope, address)
) WITHOUT ROWID;
