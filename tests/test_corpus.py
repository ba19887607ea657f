"""The bad-input corpus (tests/corpus/make_corpus.py) through the real command line:
each case exits 2 with exactly one `analogc: error:` line holding the expected text
(which names the file), no traceback, nothing on stdout, and its folder unchanged: no
output and no temporary file left behind."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import assert_user_error
from tests.corpus.make_corpus import all_cases, write_case
from tests.test_bad_inputs import snapshot

CASES = {case.name: case for case in all_cases()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("name", list(CASES))
def test_corpus_case(name, corpus, cli, monkeypatch):
    case = CASES[name]
    folder = write_case(case, corpus)
    monkeypatch.chdir(folder)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(folder)
    result = cli(*case.argv)
    assert_user_error(result, case.expected)
    assert result.out == "", result.out
    assert snapshot(folder) == before, "the command changed the folder"


def test_corpus_covers_every_loader_with_enough_cases():
    per_loader = Counter(case.loader for case in CASES.values())
    assert set(per_loader) == {"onnx", "atp", "toml", "data", "sweep"}
    assert min(per_loader.values()) >= 10 and sum(per_loader.values()) >= 40, per_loader
