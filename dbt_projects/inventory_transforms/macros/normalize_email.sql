{#
    Normalised email: lower(btrim(<column>)), with '' turned into NULL.
    btrim() strips only the space character (not tabs or newlines).
#}
{% macro normalize_email(column) -%}
    nullif(lower(btrim({{ column }})), '')
{%- endmacro %}
