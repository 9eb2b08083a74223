"""The shared kernel every app may use: the request error (`errors`), the bounds on heavy read
queries (`db`) and the security helpers (`security`). It imports no app; the wiring package
(`transformation_portal`) points settings at it."""
