{#
    Canonical department for a raw department name or code.

    Deliberately one flat CASE over lower(btrim(<column>)): the legacy rules engine
    mirrors it row for row (see README.md, "Department mapping"), so keep the two in
    step. btrim() strips only the space character. NULL, '' and every spelling not
    listed here map to 'Unassigned'.
#}
{% macro map_department(column) -%}
    case lower(btrim({{ column }}))
        when 'engineering' then 'Engineering'
        when 'eng' then 'Engineering'
        when 'eng.' then 'Engineering'
        when 'engr' then 'Engineering'
        when 'r&d' then 'Engineering'
        when 'r & d' then 'Engineering'
        when 'research & development' then 'Engineering'
        when 'finance' then 'Finance'
        when 'fin' then 'Finance'
        when 'fin.' then 'Finance'
        when 'fin & accounting' then 'Finance'
        when 'finance & accounting' then 'Finance'
        when 'accounting' then 'Finance'
        when 'human resources' then 'Human Resources'
        when 'hr' then 'Human Resources'
        when 'h.r.' then 'Human Resources'
        when 'people' then 'Human Resources'
        when 'people ops' then 'Human Resources'
        when 'sales' then 'Sales'
        when 'sls' then 'Sales'
        when 'business development' then 'Sales'
        when 'marketing' then 'Marketing'
        when 'mktg' then 'Marketing'
        when 'mkt' then 'Marketing'
        when 'operations' then 'Operations'
        when 'ops' then 'Operations'
        when 'legal' then 'Legal'
        when 'legal & compliance' then 'Legal'
        else 'Unassigned'
    end
{%- endmacro %}
