-- Cycle counting: per SKU-location stop flags, ABC classes, counts and
-- investigations.

-- Where selling a SKU is stopped at one location (a count over the stop
-- gate, until its investigation is resolved). Carried by events from Redis
-- and written by the reconciler, like sku_flags (which stays for the
-- SKU-wide flag); read by the rebuild after a Redis loss, and by channel
-- sync (a channel fed only by stopped locations is shown 0).
CREATE TABLE stop_sell_locations (
    sku         text COLLATE "C" NOT NULL,
    location_id text COLLATE "C" NOT NULL,
    stop_sell   boolean     NOT NULL,
    -- Redis time of the last change (guards against going back).
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (sku, location_id)
);
CREATE INDEX stop_sell_locations_stopped ON stop_sell_locations (sku, location_id) WHERE stop_sell;

-- The ABC class of each SKU: as computed from trailing revenue (by the
-- leader, daily), and as set by hand (wins while set). A catalog SKU without
-- a row, or with neither class, is C.
CREATE TABLE sku_abc (
    sku            text COLLATE "C" PRIMARY KEY,
    computed_class text CHECK (computed_class IN ('A', 'B', 'C')),
    -- Fulfilled quantity x unit price over the window, at the last computation.
    revenue        numeric     NOT NULL DEFAULT 0,
    computed_at    timestamptz,
    override_class text CHECK (override_class IN ('A', 'B', 'C')),
    override_at    timestamptz
);

-- Every count submitted, with who and when. operation_id makes a count
-- submitted again a no-op.
CREATE TABLE cycle_counts (
    id               bigserial   PRIMARY KEY,
    operation_id     text COLLATE "C" NOT NULL UNIQUE,
    sku              text COLLATE "C" NOT NULL,
    location_id      text COLLATE "C" NOT NULL,
    -- The SKU's class when counted (discrepancies are reported by class).
    abc_class        text        NOT NULL CHECK (abc_class IN ('A', 'B', 'C')),
    -- on_hand when the count was judged (never shown to the counter).
    expected         bigint      NOT NULL,
    counted          bigint      NOT NULL CHECK (counted >= 0),
    discrepancy      double precision NOT NULL,
    action           text        NOT NULL CHECK (action IN ('MATCHED', 'ADJUSTED', 'INVESTIGATION', 'STOP_SELL')),
    investigation_id text COLLATE "C",
    counted_by       text        NOT NULL,
    counted_at       timestamptz NOT NULL DEFAULT now()
);
-- The last count of each SKU-location (due counts).
CREATE INDEX cycle_counts_latest ON cycle_counts (sku, location_id, counted_at DESC);

-- A count past the adjust gate opens one; resolving it sets the accepted
-- on_hand through the engine (and lifts the stop) and records who and why.
CREATE TABLE investigations (
    investigation_id   text COLLATE "C" PRIMARY KEY,
    -- Listing order.
    seq                bigserial   NOT NULL UNIQUE,
    count_operation_id text COLLATE "C" NOT NULL UNIQUE,
    sku                text COLLATE "C" NOT NULL,
    location_id        text COLLATE "C" NOT NULL,
    expected           bigint      NOT NULL,
    counted            bigint      NOT NULL,
    discrepancy        double precision NOT NULL,
    -- The count stopped selling at the SKU-location.
    stop_sell          boolean     NOT NULL,
    status             text        NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
    opened_by          text        NOT NULL,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    resolved_by        text,
    accepted_on_hand   bigint,
    note               text        NOT NULL DEFAULT '',
    CHECK ((status = 'OPEN') = (resolved_at IS NULL))
);
CREATE INDEX investigations_open ON investigations (sku, location_id) WHERE status = 'OPEN';
CREATE INDEX investigations_by_status ON investigations (status, seq);
