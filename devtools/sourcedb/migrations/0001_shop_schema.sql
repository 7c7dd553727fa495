-- The shop's tables, exactly as the synthetic shop (devtools/shop/simulator.py) models them.
-- No foreign key from orders to users: erasing an account keeps its orders (bookkeeping).

create table if not exists users (
    user_id bigint primary key,
    email text not null,
    full_name text not null,
    country text,
    marketing_opt_in boolean not null default false,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table if not exists products (
    product_id bigint primary key,
    sku text not null unique,
    name text not null,
    category text not null,
    brand text,
    price numeric(12, 2) not null check (price >= 0),
    currency text not null default 'USD',
    active boolean not null default true,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table if not exists orders (
    order_id bigint primary key,
    user_id bigint not null,
    status text not null check (
        status in ('pending', 'paid', 'shipped', 'delivered', 'refunded', 'cancelled')
    ),
    currency text not null default 'USD',
    subtotal numeric(12, 2) not null check (subtotal >= 0),
    shipping numeric(12, 2) not null check (shipping >= 0),
    total_amount numeric(12, 2) not null check (total_amount >= 0),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    paid_at timestamptz,
    refunded_at timestamptz
);

create index if not exists orders_user_id_idx on orders (user_id);

-- Lines go with their order: the purge of a cancelled order deletes the order and then its
-- lines in one transaction, so the reference is checked at commit.
create table if not exists order_items (
    order_id bigint not null references orders (order_id) deferrable initially deferred,
    line_number integer not null,
    product_id bigint not null references products (product_id),
    quantity integer not null check (quantity > 0),
    unit_price numeric(12, 2) not null check (unit_price >= 0),
    primary key (order_id, line_number)
);
