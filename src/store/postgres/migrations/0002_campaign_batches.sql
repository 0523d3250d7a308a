-- tidings PostgreSQL schema, version 2: campaign batches for several workers on one campaign
-- (newsletter::batches). A batch is one page of the segment, held by one worker under a lease.
CREATE TABLE campaign_batches (
    campaign     TEXT COLLATE "C" NOT NULL,
    number       BIGINT NOT NULL CHECK (number >= 0),
    -- The segment cursors around the page: read after `after_cursor`; `next_cursor` NULL for
    -- the segment's last page.
    after_cursor TEXT,
    next_cursor  TEXT,
    recipients   TEXT[] NOT NULL,
    worker       TEXT NOT NULL,
    lease_until  BIGINT NOT NULL,
    takeovers    INTEGER NOT NULL DEFAULT 0,
    done         BOOLEAN NOT NULL DEFAULT FALSE,
    -- One batch per number: of the workers opening the next number, one wins.
    PRIMARY KEY (campaign, number)
);
-- Batches whose lease may have ended, oldest first.
CREATE INDEX campaign_batches_open ON campaign_batches (campaign, number) WHERE NOT done;
-- Erasure finds a contact's batches without reading them all.
CREATE INDEX campaign_batches_recipients ON campaign_batches USING gin (recipients);

-- The send budget shared by every worker (budget::SendBudget): per key (a Messenger Page), the
-- next free send slot, in microseconds on the database's clock.
CREATE TABLE send_budgets (
    key      TEXT PRIMARY KEY,
    next_us  BIGINT NOT NULL
);
