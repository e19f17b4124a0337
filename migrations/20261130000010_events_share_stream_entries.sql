-- A script call now writes one stream entry per partition, holding every
-- event it made there (see emit in common.lua), so an event's place in the
-- streams is its entry's id and its place in that entry. The ledger's unique
-- key, which tells a replayed batch's events from new ones, takes the place
-- within the entry too; rows written before have place 0 (one event per entry).
--
-- Adding a column with a constant default does not rewrite the table; the new
-- unique index is built over the whole ledger, under an exclusive lock: on a
-- large ledger this takes a while, during which the reconciler waits and
-- Redis keeps serving.
ALTER TABLE ledger ADD COLUMN stream_idx integer NOT NULL DEFAULT 0;
ALTER TABLE ledger DROP CONSTRAINT ledger_partition_stream_ms_stream_seq_key;
ALTER TABLE ledger ADD CONSTRAINT ledger_stream_position UNIQUE (partition, stream_ms, stream_seq, stream_idx);
