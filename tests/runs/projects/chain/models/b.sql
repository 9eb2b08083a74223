select a.id from {{ ref('a') }} as a cross join chain_gate.gate
