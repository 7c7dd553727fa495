-- One-off preparation of the shop's database for CDC (infra/README.md, step 5), idempotent.
-- Runs as shop_admin (Terraform creates it, a member of cloudsqlsuperuser); ALTER TABLE needs
-- the tables' owner: if the shop's application owns them, first `GRANT <owner> TO shop_admin`.
\set ON_ERROR_STOP on

-- Updates and deletes carry the whole old row; without it an unchanged TOASTed value arrives
-- as NULL (the local capture refuses such tables; Debezium would not notice).
alter table users replica identity full;
alter table products replica identity full;
alter table orders replica identity full;
alter table order_items replica identity full;

-- The publication Debezium reads (publication.autocreate.mode=disabled in the connector).
do $$
begin
    if not exists (select 1 from pg_publication where pubname = 'shop_cdc') then
        create publication shop_cdc for table users, products, orders, order_items
            with (publish = 'insert, update, delete, truncate');
    end if;
end
$$;

-- Debezium streams the slot and snapshots the tables; the reconciliation check reads them.
alter user debezium with replication;
grant select on users, products, orders, order_items to debezium, dagster_reader;

-- What the capture checks at start, for the log of this Job.
select c.relname, c.relreplident
from pg_publication_tables p
join pg_class c on c.relname = p.tablename
where p.pubname = 'shop_cdc'
order by 1;
