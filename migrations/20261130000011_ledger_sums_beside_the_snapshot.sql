-- The ledger's sums per SKU-location (migration …0009's ledger_totals) move
-- into stock_levels, as four columns of the snapshot's own row. The
-- reconciler then updates one row per SKU-location and batch where it
-- updated two, in two tables: on a catalog of 100,000 SKUs nearly every
-- event is a SKU-location of its own, so each of those updates was a page
-- of its own (stockd-bench's catalog: about 5 µs less of Postgres per event).
-- The periodic drift check still compares the snapshot with these sums, and
-- `stockd check` both with the ledger replayed.
--
-- The sums are moved as they are, not summed anew, so that a drift they
-- show survives the move. A sum whose SKU-location has no snapshot row
-- (only after drift) gets one with the snapshot at zero, which is how the
-- drift check read a missing row.
--
-- Stop the reconcilers of older versions first (or run them with
-- STOCKD_RECONCILER=off): one still leading after this fails every batch
-- (its table is gone) while it keeps the reconciler's lock, so nothing is
-- lost (the events stay in Redis, unacknowledged) but nothing is reconciled
-- until it stops.
ALTER TABLE stock_levels
    ADD COLUMN ledger_on_hand    bigint NOT NULL DEFAULT 0,
    ADD COLUMN ledger_reserved   bigint NOT NULL DEFAULT 0,
    ADD COLUMN ledger_committed  bigint NOT NULL DEFAULT 0,
    ADD COLUMN ledger_in_transit bigint NOT NULL DEFAULT 0;

UPDATE stock_levels AS s
SET ledger_on_hand = t.on_hand, ledger_reserved = t.reserved, ledger_committed = t.committed,
    ledger_in_transit = t.in_transit
FROM ledger_totals AS t
WHERE t.sku = s.sku AND t.location_id = s.location_id;

INSERT INTO stock_levels (sku, location_id, on_hand, reserved, committed, in_transit, partition, stream_ms,
                          stream_seq, ledger_on_hand, ledger_reserved, ledger_committed, ledger_in_transit)
SELECT t.sku, t.location_id, 0, 0, 0, 0, -1, 0, 0, t.on_hand, t.reserved, t.committed, t.in_transit
FROM ledger_totals AS t
WHERE NOT EXISTS (SELECT 1 FROM stock_levels AS s WHERE s.sku = t.sku AND s.location_id = t.location_id);

DROP TABLE ledger_totals;
