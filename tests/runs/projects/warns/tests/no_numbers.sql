{{ config(severity='warn') }}
select n from {{ ref('numbers') }}
