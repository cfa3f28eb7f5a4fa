"""`ml fmt`: one layout for spec files, comments, order, quoting and styles kept; `--check` for CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_framework.spec.fmt import FormatError, format_text
from ml_framework.testing import run_cli

REPO = Path(__file__).resolve().parents[2]

MESSY = """# the fraud model
kind:   Model
name: fraud    # trailing comment   
features:
- "customer_txn_stats:*"
-   'merchant_stats:fraud_rate_30d'
trainer:
    backend: lightgbm
    params: {num_leaves: 31,  learning_rate: 0.05}
description: |
  kept
    as written
---
kind: Entity
name: customer


"""

CLEAN = """# the fraud model
kind: Model
name: fraud    # trailing comment
features:
  - "customer_txn_stats:*"
  - 'merchant_stats:fraud_rate_30d'
trainer:
  backend: lightgbm
  params: {num_leaves: 31, learning_rate: 0.05}
description: |
  kept
    as written
---
kind: Entity
name: customer
"""


def test_one_layout_keeping_comments_order_quotes_flow_style_and_block_scalars():
    assert format_text(MESSY) == CLEAN
    assert format_text(CLEAN) == CLEAN  # idempotent
    assert format_text("---\nkind: Entity\nname: a\n") == "---\nkind: Entity\nname: a\n"


def test_invalid_yaml_is_named_with_its_line():
    with pytest.raises(FormatError, match=r"bad\.yaml:3: not valid YAML"):  # where the bracket opens
        format_text("kind: Model\nname: fraud\nfeatures: [unclosed\n", "bad.yaml")
    with pytest.raises(FormatError, match=r"dup\.yaml:3: not valid YAML.*duplicate key"):  # the duplicate itself
        format_text("kind: Model\nname: fraud\nname: fraud2\n", "dup.yaml")
    with pytest.raises(FormatError, match=r"tabs\.yaml:2: not valid YAML"):
        format_text("trainer:\n\tbackend: lightgbm\n", "tabs.yaml")


def test_files_with_nothing_to_format_stay_as_they_are():
    for text in ("", "# only a comment\n# and another\n", "---\n---\na: 1\n", "base: &b {x: 1}\nother: *b\n"):
        assert format_text(text) == text


def _project(tmp_path: Path) -> Path:
    (tmp_path / "specs" / "models").mkdir(parents=True)
    (tmp_path / "specs" / "models" / "fraud.yaml").write_text(MESSY)
    (tmp_path / "specs" / "entities.yaml").write_text("kind: Entity\nname: merchant\n")
    return tmp_path


def test_check_reports_and_changes_nothing_then_fmt_rewrites(tmp_path):
    root = _project(tmp_path)
    messy = root / "specs" / "models" / "fraud.yaml"
    check = run_cli(["fmt", "--check", "--diff"], cwd=root)
    assert check.exit_code == 2, check.output
    assert "would reformat specs/models/fraud.yaml" in check.output and "entities.yaml" not in check.output
    assert "-    backend: lightgbm" in check.output and "+  backend: lightgbm" in check.output
    assert messy.read_text() == MESSY
    done = run_cli(["fmt"], cwd=root)
    assert done.exit_code == 0 and "formatted specs/models/fraud.yaml" in done.output
    assert messy.read_text() == CLEAN
    again = run_cli(["fmt", "--check"], cwd=root)
    assert again.exit_code == 0 and "all spec files are formatted" in again.output


def test_a_broken_file_fails_alone_and_is_left_as_it_was(tmp_path):
    root = _project(tmp_path)
    broken = root / "specs" / "broken.yaml"
    broken.write_text("kind: Model\nname: [unclosed\n")
    result = run_cli(["fmt"], cwd=root)
    assert result.exit_code == 1
    assert "broken.yaml:2: not valid YAML" in result.output
    assert broken.read_text() == "kind: Model\nname: [unclosed\n"
    assert (root / "specs" / "models" / "fraud.yaml").read_text() == CLEAN  # the others were formatted


@pytest.mark.parametrize("specs", ["specs", "examples/clinic/specs", "examples/plugin-snapshots"])
def test_the_shipped_specs_are_formatted(specs):
    result = run_cli(["fmt", "--check", str(REPO / specs)], cwd=REPO)
    assert result.exit_code == 0, result.output
