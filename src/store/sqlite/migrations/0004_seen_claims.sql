-- tidings SQLite schema, version 4: a seen key is either claimed (a handler holds it until its
-- lease ends) or settled (handled). Every mark written before this version was settled.
ALTER TABLE seen_events ADD COLUMN settled INTEGER NOT NULL DEFAULT 1;
