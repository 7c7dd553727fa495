{#
    Current state of a source table from its raw CDC changes.

    Raw holds every change as it arrived: at-least-once, so the same change (same pk + lsn)
    may be there more than once after a replay, in any of the topic's Kafka partitions.

    - Per primary key the change with the highest LSN wins. Ties (a replay, or a snapshot row
      and a streamed change at the snapshot's LSN): a streamed change beats a snapshot row,
      then the latest ingestion, then Kafka partition and offset (offsets only order records
      within one partition, so they only break what is otherwise a true duplicate).
    - A winning delete removes the row. A primary-key change arrives as a delete of the old
      key and a create of the new one.
    - A truncate removes every row whose winning change has a lower LSN.
    - A snapshot (op r; all its rows carry the LSN the snapshot was taken at) is the whole
      table: a row whose latest change is older than the latest snapshot and that is not in
      it was deleted while nothing was captured (an outage before a re-snapshot). A snapshot
      is taken as complete once its rows are in raw; while one is still landing, rows not
      landed yet are missing for that while. A table that was empty when re-snapshotted has
      no snapshot rows, so its deletes during the outage go unnoticed.

    cdc_current_state returns the winning change's `after` JSON with pk, lsn, source_ts and
    ingested_at, for the rows that exist now. cdc_latest_images returns every key ever seen
    with its latest row image (`after` of its latest c/u/r change), whether the row exists
    now (is_current) and, when not, the LSN that removed it (removed_lsn: the delete, or
    the latest truncate or snapshot that left it out).
#}

{% macro cdc_current_state(cdc_relation) -%}
    select
        latest.pk,
        latest.after,
        latest.lsn,
        latest.source_ts,
        latest.ingested_at
    from ({{ _cdc_ranked_changes(cdc_relation, ('c', 'u', 'd', 'r')) }}) as latest
    cross join ({{ _cdc_resets(cdc_relation) }}) as resets
    where
        latest.change_rank = 1
        and {{ _cdc_survives('latest', 'resets') }}
{%- endmacro %}


{% macro cdc_latest_images(cdc_relation) -%}
    select
        images.pk,
        images.after,
        images.lsn,
        images.source_ts,
        images.ingested_at,
        {{ _cdc_survives('latest', 'resets') }} as is_current,
        case
            when latest.op = 'd' then latest.lsn
            when not ({{ _cdc_survives('latest', 'resets') }})
                then greatest(coalesce(resets.truncate_lsn, 0), coalesce(resets.snapshot_lsn, 0))
        end as removed_lsn
    from ({{ _cdc_ranked_changes(cdc_relation, ('c', 'u', 'd', 'r')) }}) as latest
    inner join ({{ _cdc_ranked_changes(cdc_relation, ('c', 'u', 'r')) }}) as images
        on latest.pk = images.pk
    cross join ({{ _cdc_resets(cdc_relation) }}) as resets
    where
        latest.change_rank = 1
        and images.change_rank = 1
{%- endmacro %}


{# Changes of the given ops ranked per key, the winner first (see above for the ties). #}
{% macro _cdc_ranked_changes(cdc_relation, ops) -%}
    select
        op,
        pk,
        after,
        lsn,
        source_ts,
        ingested_at,
        row_number() over (
            partition by pk
            order by
                lsn desc,
                case when op = 'r' then 0 else 1 end desc,
                ingested_at desc nulls last,
                kafka_partition desc nulls last,
                kafka_offset desc nulls last
        ) as change_rank
    from {{ cdc_relation }}
    where pk is not null and op in ('{{ ops | join("', '") }}')
{%- endmacro %}


{# The table's latest truncate and latest snapshot (null when there was none). #}
{% macro _cdc_resets(cdc_relation) -%}
    select
        max(case when op = 't' then lsn end) as truncate_lsn,
        max(case when op = 'r' then lsn end) as snapshot_lsn
    from {{ cdc_relation }}
{%- endmacro %}


{# The winning change leaves the row in the table: no delete, truncate or snapshot since. #}
{% macro _cdc_survives(latest, resets) -%}
    (
        {{ latest }}.op != 'd'
        and ({{ resets }}.truncate_lsn is null or {{ latest }}.lsn > {{ resets }}.truncate_lsn)
        and ({{ resets }}.snapshot_lsn is null or {{ latest }}.lsn >= {{ resets }}.snapshot_lsn)
    )
{%- endmacro %}
