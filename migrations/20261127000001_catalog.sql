-- Catalog: SKUs and locations, plus store-wide settings fixed at set-up.

-- Settings fixed when the store is first set up (e.g. the partition count).
CREATE TABLE store_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE locations (
    location_id text PRIMARY KEY,
    name        text        NOT NULL,
    -- Lower numbers are allocated from first.
    priority    integer     NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE skus (
    sku           text PRIMARY KEY,
    name          text          NOT NULL,
    unit_price    numeric(14,4) NOT NULL DEFAULT 0 CHECK (unit_price >= 0),
    unit_cost     numeric(14,4) NOT NULL DEFAULT 0 CHECK (unit_cost >= 0),
    supplier_id   text,
    -- Static reorder point; NULL: computed from velocity.
    reorder_point bigint CHECK (reorder_point >= 0),
    case_pack     integer       NOT NULL DEFAULT 1 CHECK (case_pack >= 1),
    create_time   timestamptz   NOT NULL DEFAULT now(),
    update_time   timestamptz   NOT NULL DEFAULT now()
);
