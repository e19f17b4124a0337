-- The ledger's sums per SKU-location, kept by the reconciler in the
-- transaction that inserts the rows, so that the periodic drift check
-- compares the snapshot with them instead of summing the whole ledger
-- every few minutes: a GROUP BY over every row ever written, which on a
-- store of some years (hundreds of millions of rows) takes longer than the
-- check's interval. `stockd check` still replays the ledger from zero, and
-- compares these sums with it too.
--
-- Filled here from the ledger as it is. Reconcilers of an older version
-- still running after this migration do not add to it: stop them first (or
-- run `stockd check --repair` once they are gone, which sets these sums from
-- the replayed ledger).
CREATE TABLE ledger_totals (
    sku         text COLLATE "C" NOT NULL,
    location_id text COLLATE "C" NOT NULL,
    on_hand     bigint NOT NULL,
    reserved    bigint NOT NULL,
    committed   bigint NOT NULL,
    in_transit  bigint NOT NULL,
    PRIMARY KEY (sku, location_id)
) WITH (fillfactor = 70);

INSERT INTO ledger_totals (sku, location_id, on_hand, reserved, committed, in_transit)
SELECT sku, location_id, sum(on_hand_delta), sum(reserved_delta), sum(committed_delta), sum(in_transit_delta)
FROM ledger
GROUP BY sku, location_id;
