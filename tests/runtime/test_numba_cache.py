"""drop_stale_builds: a module's cached numba builds survive while its own and its
callees' sources are unchanged, and go when any of them changes."""

from __future__ import annotations

import types

from analogc.runtime.physics.numba_cache import drop_stale_builds


def test_builds_go_when_a_callee_changes(tmp_path):
    module, callee = tmp_path / "kern.py", tmp_path / "rng.py"
    module.write_text("def f(): pass\n")
    callee.write_text("def g(): return 1\n")
    callees = [types.SimpleNamespace(__file__=str(callee))]
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    build, other = cache / "kern.f-1.py311.nbi", cache / "other.g-1.py311.nbi"

    def fresh_builds():
        for path in (build, other):
            path.write_text("machine code")

    fresh_builds()
    drop_stale_builds(str(module), callees)  # no stamp yet: this module's builds are unknown
    assert not build.exists() and other.exists()
    fresh_builds()
    drop_stale_builds(str(module), callees)  # nothing changed
    assert build.exists()
    callee.write_text("def g(): return 2\n")
    drop_stale_builds(str(module), callees)
    assert not build.exists() and other.exists()
    fresh_builds()
    module.write_text("def f(): return 0\n")
    drop_stale_builds(str(module), callees)
    assert not build.exists()
