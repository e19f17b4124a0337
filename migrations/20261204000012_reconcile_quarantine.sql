-- Events the reconciler could not write, kept for an operator instead of
-- stopping the reconciler. Postgres refusing an event for what it holds (a
-- number out of range, a constraint, text it does not take) used to fail
-- every batch that carried it, forever. The reconciler now writes the rest,
-- keeps the refused event here with the error, and moves on; `stockd check`
-- fails while any row is unresolved, and `stockd quarantine list|retry|discard`
-- resolves them. Rows are never deleted: a resolution records who, when and
-- how. Entries that cannot be read at all (another version's format) are kept
-- here too, whole, rather than skipped with only a log line.
CREATE TABLE reconcile_quarantine (
    -- The handle an operator names (`stockd quarantine retry ID`).
    id               bigserial   PRIMARY KEY,
    -- Where the event sits in the streams, as in the ledger: a batch read
    -- again (a crash before the acknowledgement) finds its row here and adds
    -- none.
    partition        integer     NOT NULL,
    stream_ms        bigint      NOT NULL,
    stream_seq       bigint      NOT NULL,
    stream_idx       integer     NOT NULL,
    -- The event exactly as read: its entry's field-value list (one `v` field
    -- and its packed value, or every field of an event in the older
    -- one-field-per-value form, or a whole unreadable entry). bytea, because
    -- what Postgres refused may be text it does not take (a NUL byte).
    raw              bytea[]     NOT NULL,
    -- What the event says, readable (control characters escaped).
    summary          text        NOT NULL,
    -- For stock events: what it changes, so that the drift check can
    -- attribute a difference to it (NULL for other events and unreadable
    -- entries; text escaped like summary).
    kind             text,
    sku              text COLLATE "C",
    location_id      text COLLATE "C",
    on_hand_delta    bigint,
    reserved_delta   bigint,
    committed_delta  bigint,
    in_transit_delta bigint,
    -- Postgres's error (the last one, after a retry that failed too) and its
    -- SQLSTATE (NULL when the reconciler refused it itself: unreadable).
    error            text        NOT NULL,
    sqlstate         text,
    -- The store generation the event was read under. A retry after Redis was
    -- rebuilt from Postgres (which did not have the event) would put in the
    -- ledger a change the rebuilt Redis does not hold, so it is refused then.
    generation       text        NOT NULL,
    quarantined_at   timestamptz NOT NULL DEFAULT now(),
    -- Times it was refused: by the reconciler (again after a replay) or a retry.
    attempts         integer     NOT NULL DEFAULT 1,
    last_attempt_at  timestamptz NOT NULL DEFAULT now(),
    resolution       text        CHECK (resolution IN ('retried', 'discarded')),
    resolved_at      timestamptz,
    resolved_by      text,
    note             text,
    CONSTRAINT reconcile_quarantine_resolved CHECK ((resolution IS NULL) = (resolved_at IS NULL)),
    CONSTRAINT reconcile_quarantine_position UNIQUE (partition, stream_ms, stream_seq, stream_idx)
);

-- The unresolved ones: counted for the metric every few seconds, and listed
-- by `stockd check`.
CREATE INDEX reconcile_quarantine_unresolved ON reconcile_quarantine (id) WHERE resolved_at IS NULL;
