{#
    Current state of a source table from its raw CDC changes.

    Raw holds every change as it arrived: at-least-once, so the same change (same pk + lsn)
    may be there more than once after a replay. Per primary key the change with the highest
    LSN wins (ties: highest Kafka offset, then latest ingestion); a winning delete removes
    the row; a truncate removes every row whose winning change has a lower LSN.
    Returns the winning change's `after` JSON with pk, lsn, source_ts and ingested_at.
#}
{% macro cdc_current_state(cdc_relation) -%}
    select
        ranked_changes.pk,
        ranked_changes.after,
        ranked_changes.lsn,
        ranked_changes.source_ts,
        ranked_changes.ingested_at
    from (
        select
            op,
            pk,
            after,
            lsn,
            source_ts,
            ingested_at,
            row_number() over (
                partition by pk
                order by lsn desc, kafka_offset desc nulls last, ingested_at desc
            ) as change_rank
        from {{ cdc_relation }}
        where op != 't' and pk is not null
    ) as ranked_changes
    cross join (
        select max(lsn) as truncate_lsn
        from {{ cdc_relation }}
        where op = 't'
    ) as last_truncate
    where
        ranked_changes.change_rank = 1
        and ranked_changes.op != 'd'
        and (last_truncate.truncate_lsn is null or ranked_changes.lsn > last_truncate.truncate_lsn)
{%- endmacro %}
