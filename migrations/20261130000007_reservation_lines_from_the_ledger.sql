-- reservation_lines becomes a view over the ledger, as reservation_history
-- did in migration …0004.
--
-- Every line of a reservation is a 'reserve' event in the ledger, with its
-- order id, SKU, location and quantity (reserved_delta), at the reservation's
-- time: all events of one reserve carry the same Redis time, which is the
-- header's created_at. The table repeated them, at a row and a btree entry
-- per line (about 15% of the reconciler's Postgres time in a flash sale),
-- and an order whose events straddled two batches could get a line of an
-- earlier reservation of a reused order id. The view takes, for each header,
-- the reserve events at its created_at: only the current reservation's
-- lines, with the same columns as the table. ledger_by_order serves a lookup
-- by order.
DROP TABLE reservation_lines;
CREATE VIEW reservation_lines AS
SELECT l.order_id,
       l.sku,
       l.location_id,
       sum(l.reserved_delta)::bigint AS quantity
FROM reservations r
JOIN ledger l ON l.order_id = r.order_id AND l.kind = 'reserve' AND l.occurred_at = r.created_at
GROUP BY l.order_id, l.sku, l.location_id;
