"""Every golden fixture says where its values came from: the authors' repository, the exact commit,
what was patched, the torch that ran it and the command that wrote it (issue #13: "small JSON
fixtures with provenance"). Two fixtures once carried an empty commit (their probe ran from an export,
which has no .git); the probes now refuse to write without one, and this keeps it so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FIXTURES = sorted(Path(__file__).parent.glob("*.json"))


def test_every_probe_fixture_is_here():
    probes = sorted(p.stem.removesuffix("_probe") for p in (Path(__file__).parents[2] / "experiments" / "parity").glob("*_probe.py"))
    assert [f.stem for f in FIXTURES] == probes


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_fixture_names_its_source(fixture):
    provenance = json.loads(fixture.read_text())["provenance"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", provenance["repository"])
    assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"]), f"{fixture.name}: commit {provenance['commit']!r}"
    assert provenance["patches"] and provenance["torch"]
    assert f"tests/parity/{fixture.name}" in provenance["command"]
