-- tidings SQLite schema, version 5: an incoming entry is recorded once per inbound event key
-- too, so an event without a transport message id that is routed again after a crash is
-- recorded once.
ALTER TABLE inbox_entries ADD COLUMN event_key TEXT;
CREATE UNIQUE INDEX inbox_incoming_event_once ON inbox_entries (channel, event_key)
    WHERE incoming = 1 AND event_key IS NOT NULL;
