{#
    The delete+insert incremental strategy on BigQuery, which dbt-bigquery does not offer
    (it has merge, insert_overwrite and microbatch).

    Why: int_sessions rebuilds every session of the visitors with new events and must drop the
    sessions a late event merged away. A merge on session_id keeps those; insert_overwrite
    replaces whole days, so every visitor of each touched day would be rebuilt. delete+insert
    on anonymous_id removes exactly the rebuilt visitors' sessions and inserts their new ones,
    as it does on DuckDB. Without it BigQuery rebuilt every visitor's sessions and rewrote the
    whole table at every refresh: slot time that grows with the history.

    How: the project overrides the two dbt-bigquery macros the incremental materialization
    calls by name (a root project's macros come first) and hands every other strategy back
    to dbt-bigquery's own (`dbt.` names the adapter's macros). The statements are dbt's own
    delete+insert (`get_delete_insert_merge_sql`), from the temporary table the
    materialization builds when on_schema_change is set, in one transaction: a failed insert
    leaves the visitors' old sessions, never none.
#}

{% macro dbt_bigquery_validate_get_incremental_strategy(config) %}
    {%- if config.get('incremental_strategy') == 'delete+insert' -%}
        {%- if not config.get('unique_key') -%}
            {%- do exceptions.raise_compiler_error(
                "incremental_strategy 'delete+insert' needs a unique_key (the rows it replaces)"
            ) -%}
        {%- endif -%}
        {{ return('delete+insert') }}
    {%- endif -%}
    {{ return(dbt.dbt_bigquery_validate_get_incremental_strategy(config)) }}
{% endmacro %}

{% macro bq_generate_incremental_build_sql(
    strategy, tmp_relation, target_relation, sql, unique_key, partition_by, partitions,
    dest_columns, tmp_relation_exists, copy_partitions, incremental_predicates
) %}
    {%- if strategy != 'delete+insert' -%}
        {{ return(dbt.bq_generate_incremental_build_sql(
            strategy, tmp_relation, target_relation, sql, unique_key, partition_by, partitions,
            dest_columns, tmp_relation_exists, copy_partitions, incremental_predicates
        )) }}
    {%- endif -%}
    {%- if not tmp_relation_exists -%}
        {#- the rows are read twice (the keys to delete, then the insert): from a table -#}
        {%- do exceptions.raise_compiler_error(
            "incremental_strategy 'delete+insert' on BigQuery needs on_schema_change set "
            ~ "(append_new_columns, sync_all_columns or fail), which builds the temporary table"
        ) -%}
    {%- endif -%}
    {%- set statements -%}
begin transaction;
{{ get_delete_insert_merge_sql(
    target_relation, tmp_relation, unique_key, dest_columns, incremental_predicates
) }};
commit transaction;
    {%- endset -%}
    {{ return(statements) }}
{% endmacro %}
