select t.id from {{ ref('things') }} as t join flaky_switch.bad as b on b.id = t.id
