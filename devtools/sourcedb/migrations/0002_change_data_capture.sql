-- Change data capture: updates and deletes carry the whole old row (Debezium's `before`),
-- and one publication lists the captured tables for pgoutput. The replication slot is made
-- by the capture itself (it needs the slot's exported snapshot for its initial snapshot).
alter table users replica identity full;
alter table products replica identity full;
alter table orders replica identity full;
alter table order_items replica identity full;

do $$
begin
    if not exists (select 1 from pg_publication where pubname = 'shop_cdc') then
        create publication shop_cdc for table users, products, orders, order_items
            with (publish = 'insert, update, delete, truncate');
    end if;
end
$$;
