-- System of record: the ledger of every stock change, the levels snapshot,
-- reservations with their lines and status history, applied operation ids
-- and per-SKU flags. Written only by the reconciler (from Redis event
-- streams), read by the rebuild after a Redis loss, the drift check and the API.

-- One row per change per SKU-location, append-only. (partition, stream_ms,
-- stream_seq) is the Redis stream entry it came from: a replayed batch
-- inserts nothing twice.
CREATE TABLE ledger (
    id               bigserial   PRIMARY KEY,
    partition        integer     NOT NULL,
    stream_ms        bigint      NOT NULL,
    stream_seq       bigint      NOT NULL,
    kind             text        NOT NULL,
    sku              text        NOT NULL,
    location_id      text        NOT NULL,
    on_hand_delta    bigint      NOT NULL,
    reserved_delta   bigint      NOT NULL,
    committed_delta  bigint      NOT NULL,
    in_transit_delta bigint      NOT NULL,
    order_id         text,
    operation_id     text,
    reason           text,
    actor            text        NOT NULL DEFAULT 'stockd',
    -- Redis time of the change.
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partition, stream_ms, stream_seq)
);
CREATE INDEX ledger_by_sku ON ledger (sku, location_id, id DESC);
CREATE INDEX ledger_by_order ON ledger (order_id) WHERE order_id IS NOT NULL;

-- The levels as of the last reconciled event of each SKU-location.
CREATE TABLE stock_levels (
    sku         text        NOT NULL,
    location_id text        NOT NULL,
    on_hand     bigint      NOT NULL,
    reserved    bigint      NOT NULL,
    committed   bigint      NOT NULL,
    in_transit  bigint      NOT NULL,
    -- The stream entry these values are as of (guards against going back).
    partition   integer     NOT NULL,
    stream_ms   bigint      NOT NULL,
    stream_seq  bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location_id)
);

CREATE TABLE reservations (
    order_id       text        PRIMARY KEY,
    status         text        NOT NULL CHECK (status IN ('ACTIVE', 'COMMITTED', 'FULFILLED', 'RELEASED', 'EXPIRED')),
    channel        text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    release_reason text        NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL
);
CREATE INDEX reservations_live ON reservations (status) WHERE status IN ('ACTIVE', 'COMMITTED');

CREATE TABLE reservation_lines (
    order_id    text   NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    sku         text   NOT NULL,
    location_id text   NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku, location_id)
);

CREATE TABLE reservation_history (
    id          bigserial   PRIMARY KEY,
    order_id    text        NOT NULL,
    status      text        NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX reservation_history_by_order ON reservation_history (order_id, id);

-- Operation ids applied by the engine, so a rebuilt Redis still refuses replays.
CREATE TABLE applied_operations (
    operation_id text        NOT NULL,
    sku          text        NOT NULL,
    applied_at   timestamptz NOT NULL,
    PRIMARY KEY (operation_id, sku)
);
CREATE INDEX applied_operations_by_time ON applied_operations (applied_at);

-- Per-SKU flags carried by events (stop selling).
CREATE TABLE sku_flags (
    sku        text        PRIMARY KEY,
    stop_sell  boolean     NOT NULL,
    updated_at timestamptz NOT NULL
);
