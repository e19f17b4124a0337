-- reservations_live served no query (the rebuild's query has an OR that
-- scans the table anyway), yet every reserve inserted into it, and since it
-- indexed status, every status move (commit, fulfil, release, expire) had to
-- write new entries in every index of the table. Without it, and with room
-- left on each page, a status move can be a heap-only (HOT) update: the
-- reconciler's commonest write touches no index at all.
DROP INDEX IF EXISTS reservations_live;
ALTER TABLE reservations SET (fillfactor = 80);
