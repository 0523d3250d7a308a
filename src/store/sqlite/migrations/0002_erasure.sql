-- tidings SQLite schema, version 2: indexes for erasing a contact (Erasure::forget).
-- Every other table a contact's data lives in is already reached by contact id (or cascades
-- from one that is); process instances were indexed by contact only while unfinished, so
-- forgetting a contact's finished instances would scan the table.
CREATE INDEX process_instances_by_contact ON process_instances (contact_id);
