-- Replenishment: suppliers, purchase orders and their movements through the
-- engine, the notification outbox, the reorder watch's place in the ledger,
-- and the ledger index the velocity query reads.
--
-- Nothing here is a stock number: in_transit and on_hand move only through
-- the engine (po.lua) and reach Postgres through the reconciler, like every
-- other change. These tables say what was ordered and what was asked of the
-- engine.

-- Who supplies SKUs (skus.supplier_id names one; no foreign key: a
-- spreadsheet may name a supplier before it is set up, and such SKUs are
-- simply not suggested until it is).
CREATE TABLE suppliers (
    supplier_id        text COLLATE "C" PRIMARY KEY,
    name               text        NOT NULL,
    lead_time_days     integer     NOT NULL CHECK (lead_time_days >= 0),
    -- Fewest units one PO line may ask for (0: no minimum).
    min_order_quantity bigint      NOT NULL DEFAULT 0 CHECK (min_order_quantity >= 0),
    -- http:// URL to POST a notification to for each created or changed PO; '' for none.
    notify_url         text        NOT NULL DEFAULT '',
    auto_submit        boolean     NOT NULL DEFAULT false,
    -- Probability of not running out within a lead time, (0.5, 1); NULL: the global default.
    service_level      double precision CHECK (service_level > 0.5 AND service_level < 1),
    create_time        timestamptz NOT NULL DEFAULT now(),
    update_time        timestamptz NOT NULL DEFAULT now()
);

-- Units per day to assume for a SKU with too little history of its own (a new SKU).
ALTER TABLE skus ADD COLUMN fallback_velocity double precision CHECK (fallback_velocity >= 0);

-- A purchase order: one supplier, one location.
-- status: DRAFT -> SUBMITTED -> PARTIALLY_RECEIVED -> RECEIVED, or -> CANCELLED
-- from any but RECEIVED.
CREATE TABLE purchase_orders (
    po_id        text COLLATE "C" PRIMARY KEY,
    supplier_id  text COLLATE "C" NOT NULL,
    location_id  text COLLATE "C" NOT NULL,
    status       text        NOT NULL CHECK (status IN ('DRAFT', 'SUBMITTED', 'PARTIALLY_RECEIVED', 'RECEIVED',
                                                        'CANCELLED')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    submitted_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Lines merge into the one open draft of a supplier at a location.
CREATE UNIQUE INDEX purchase_orders_one_draft ON purchase_orders (supplier_id, location_id) WHERE status = 'DRAFT';
CREATE INDEX purchase_orders_by_status ON purchase_orders (status, po_id);

CREATE TABLE purchase_order_lines (
    po_id    text COLLATE "C" NOT NULL REFERENCES purchase_orders (po_id),
    sku      text COLLATE "C" NOT NULL,
    quantity bigint NOT NULL CHECK (quantity > 0),
    -- Units received so far (receipts are recorded before the engine moves
    -- them: see po_movements), never more than ordered.
    received bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= quantity),
    PRIMARY KEY (po_id, sku)
);
-- Which open PO covers a SKU (the reorder check's "no second line").
CREATE INDEX purchase_order_lines_by_sku ON purchase_order_lines (sku);

-- Each change a PO asks of the engine (submit, a receipt, cancel), recorded
-- in the same transaction that moves the PO's status and received
-- quantities, before the engine is asked. applied_at is set once the engine
-- has it; a movement left unapplied by a crash or a Redis outage is applied
-- again (its operation id makes a second application a no-op) by the next
-- call on the PO or by the replenishment worker. `lines` is a JSON array of
-- {sku, on_hand, in_transit} deltas.
CREATE TABLE po_movements (
    operation_id text COLLATE "C" PRIMARY KEY,
    -- The order they were recorded in, which is the order they are applied
    -- in (a PO's receipt must follow its submit into the engine).
    seq          bigserial   NOT NULL,
    po_id        text COLLATE "C" NOT NULL REFERENCES purchase_orders (po_id),
    kind         text        NOT NULL CHECK (kind IN ('po_submit', 'po_receive', 'po_cancel')),
    location_id  text COLLATE "C" NOT NULL,
    lines        jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz
);
CREATE INDEX po_movements_pending ON po_movements (seq) WHERE applied_at IS NULL;
CREATE INDEX po_movements_by_po ON po_movements (po_id);

-- The notification outbox: one row per created or changed PO whose supplier
-- has a notify URL. The body is built from the PO when it is sent (so a PO
-- submitted meanwhile is sent as it stands) and kept once delivered.
CREATE TABLE po_notifications (
    id              bigserial   PRIMARY KEY,
    po_id           text COLLATE "C" NOT NULL REFERENCES purchase_orders (po_id),
    event           text        NOT NULL CHECK (event IN ('created', 'changed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    payload         jsonb,
    delivered_at    timestamptz,
    -- Set when the attempts ran out; the PO itself is untouched.
    gave_up_at      timestamptz
);
CREATE INDEX po_notifications_due ON po_notifications (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- How far the reorder watch has read the ledger (its id): the SKU-locations
-- of rows after it are checked again. One row.
CREATE TABLE reorder_watch (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_ledger_id bigint NOT NULL
);

-- Velocity reads, per SKU-location, the ledger rows that moved on_hand
-- (fulfilments for sales; every on_hand move to tell the days it was out of
-- stock) within the window: an index-only range scan per SKU-location here,
-- bounded by the window however long the ledger grows. Reservation moves
-- (reserve, commit, release, expire: most rows) are not in it.
-- Writes to the ledger wait while the index is built: on a large ledger run
-- this migration at a quiet time (Redis keeps serving; the reconciler
-- catches up afterwards).
CREATE INDEX ledger_on_hand_moves ON ledger (sku, location_id, occurred_at) INCLUDE (kind, on_hand_delta)
    WHERE on_hand_delta <> 0;
