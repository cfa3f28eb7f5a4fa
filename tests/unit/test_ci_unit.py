"""`ml ci`'s parts that need no server: where it would comment, and the comment's body."""

from __future__ import annotations

import json

import pytest

from ml_framework.plugins.ci.cli import compose_comment
from ml_framework.plugins.ci.comments import CommentError, marker_for, thread_for


def test_the_ci_system_is_found_from_its_variables(tmp_path):
    assert thread_for("auto", {}) is None  # outside CI: no comment
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    github = thread_for("auto", {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "t",
                                 "GITHUB_EVENT_PATH": str(event)})
    assert github.list_url == "https://api.github.com/repos/o/r/issues/12/comments" and github.edit_method == "PATCH"
    gitlab = thread_for("auto", {"GITLAB_CI": "true", "CI_API_V4_URL": "https://gl/api/v4", "CI_PROJECT_ID": "g/p",
                                 "CI_MERGE_REQUEST_IID": "4", "GITLAB_TOKEN": "t"})
    assert gitlab.list_url == "https://gl/api/v4/projects/g%2Fp/merge_requests/4/notes" and gitlab.edit_method == "PUT"
    with pytest.raises(CommentError, match="the pull request number is not set"):
        thread_for("github", {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "t"})
    with pytest.raises(CommentError, match="unknown place 'bitbucket'"):
        thread_for("bitbucket", {})


def test_a_long_plan_is_cut_to_fit_a_comment_and_says_where_the_rest_is():
    plan = "\n".join(f"| row {i} | create |" for i in range(5000))
    body = compose_comment(project="p", commit="abc", plan_markdown=plan, plan_file="ml-plan/plan.json",
                           failures=[], notes=[], limit=10_000)
    assert len(body) <= 10_000 and body.startswith(marker_for("p"))
    assert "the whole plan is in the job's artifacts (`ml-plan/plan.json`" in body
    short = compose_comment(project="p", commit=None, plan_markdown="### ✅ No changes.", plan_file="x.json",
                            failures=[("ml validate", "bad\n" * 100)], notes=["note"], limit=60_000)
    assert "#### ❌ `ml validate` failed" in short and "(40 lines above)" in short and "No changes." in short
