"""Every figure of every policy in reference/policies has a source: a sentence quoted from a
document in ../shared/sources (and the sentence is really there), or a stated other origin."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from hub.reference.policy import PolicyFileError, Source, load_policy_file, parse_policy

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted((REPO / "reference" / "policies").glob("*.yaml"))
SOURCES = REPO.parent / "shared" / "sources"
NOT_FIGURES = {"pool_code", "pool_name", "insurance_type", "policy_version", "sources", "readings", "illustrative"}
WORDS = re.compile(r"^[A-Z_]+$")  # enum words (segment_basis, applies_to ...) are not figures


def figures(node, path: str = "") -> list[str]:
    """Dotted paths of every figure in a policy document: numbers, dates and yes/no rules."""
    if isinstance(node, dict):
        return [p for key, value in node.items() if not (not path and key in NOT_FIGURES)
                for p in figures(value, f"{path}.{key}" if path else str(key))]
    if isinstance(node, list):
        return [p for n, value in enumerate(node) for p in figures(value, f"{path}.{n}")]
    if node is None or (isinstance(node, str) and WORDS.match(node)):
        return []
    return [path]


def exists(document, path: str) -> bool:
    """Whether the dotted path names something in the document (a null too: "no cap" is a figure)."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def covered(path: str, by: list[str]) -> bool:
    return any(path == f or path.startswith(f + ".") for f in by)


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_every_figure_has_a_source_and_every_quote_is_in_its_document(path):
    assert SOURCES.is_dir(), f"{SOURCES} is missing: the policy documents live beside the repository"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy = parse_policy(document, str(path))
    sources = [s for s in policy.sources if isinstance(s, Source)]
    assert len(sources) == len(policy.sources), "every source names its figures (no one-line strings)"
    cited = [f for s in sources for f in s.figures]
    assert [f for f in figures(document) if not covered(f, cited)] == [], "figures without a source"
    for s in sources:
        if s.file is not None:
            text = (SOURCES / s.file).read_text(encoding="utf-8")
            assert _squeezed(s.quote) in _squeezed(text), f"{s.file} does not say {s.quote!r}"
        assert all(exists(document, c) for c in s.figures), f"{s.figures}: a cited path that is not in the policy"


def test_the_walk_finds_figures_and_skips_words():
    document = {"policy_version": "x", "effective_from": date(2020, 1, 1), "inpatient": {"ratio_by_level": {"1": 80}},
                "serious_illness": {"segment_basis": "CUMULATIVE", "segments": [{"lower": 0, "ratio": 50}],
                                    "applies_to": ["INPATIENT"]}}
    assert figures(document) == ["effective_from", "inpatient.ratio_by_level.1", "serious_illness.segments.0.lower",
                                 "serious_illness.segments.0.ratio"]
    assert covered("inpatient.ratio_by_level.1", ["inpatient"]) and not covered("inpatient_x", ["inpatient"])
    assert exists(document, "serious_illness.segments.0.ratio") and not exists(document, "serious_illness.segments.1")


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_every_policy_cites_a_document_or_declares_itself_illustrative(path):
    policy = parse_policy(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    cited = [s.file for s in policy.sources if isinstance(s, Source) and s.file]
    assert cited or (policy.illustrative and any(isinstance(s, Source) and s.origin for s in policy.sources))
    if policy.illustrative:
        assert "illustrative" in policy.pool_name and policy.pool_code.startswith("9999")  # never a real region's code


def test_a_policy_file_that_cites_no_document_is_refused_unless_illustrative(tmp_path):
    """Refused when a file is read (to be published), not when a published version is read back."""
    document = yaml.safe_load((REPO / "reference" / "policies" / "999903-RESIDENT-2023.2.yaml").read_text("utf-8"))
    unmarked = tmp_path / "unmarked.yaml"
    unmarked.write_text(yaml.safe_dump({**document, "illustrative": False}, allow_unicode=True), "utf-8")
    with pytest.raises(PolicyFileError, match="illustrative"):
        load_policy_file(unmarked)
    assert parse_policy({**document, "illustrative": False}, "published earlier").uncited() is not None
