-- tidings SQLite schema, version 3: the agents' read mark per conversation (unread counts).
CREATE TABLE inbox_read_marks (
    contact_id  TEXT PRIMARY KEY NOT NULL,
    up_to       INTEGER NOT NULL
) WITHOUT ROWID;

-- The conversation list orders conversations by their newest entry.
CREATE INDEX inbox_newest ON inbox_entries (contact_id, at DESC, seq DESC);
