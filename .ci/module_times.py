"""Prints where a pass's time went: the seconds of each test module, slowest first, from the
JUnit XML pytest wrote (`.ci/run` passes --junitxml)."""

import sys
import xml.etree.ElementTree as ET  # noqa: S405 - our own pytest's report
from collections import Counter

seconds: Counter[str] = Counter()
tests: Counter[str] = Counter()
for case in ET.parse(sys.argv[1]).iter("testcase"):  # noqa: S314
    module = case.get("classname", "?")
    seconds[module] += float(case.get("time", 0))
    tests[module] += 1
total = f"all modules: {sum(seconds.values()):.0f} s in {sum(tests.values())} tests"
print(f"{'seconds':>8} {'tests':>5}  module ({total})")
for module, spent in seconds.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 20):
    print(f"{spent:8.1f} {tests[module]:5d}  {module}")
