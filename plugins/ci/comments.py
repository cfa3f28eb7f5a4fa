"""One plan comment per pull request, updated in place: found again by a hidden marker in its body.

GitHub (issue comments of the pull request) and GitLab (notes of the merge request), over their REST
APIs with the standard library (no client library to install in a CI image). Settings come from the
variables each CI system sets; a token with permission to comment is the one thing to provide.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ml_framework.errors import MLError

__all__ = ["CommentError", "Thread", "github_thread", "gitlab_thread", "thread_for", "marker_for", "upsert",
           "COMMENT_LIMIT"]

COMMENT_LIMIT = 60_000  # GitHub refuses bodies over 65,536 characters; GitLab's notes allow 1,000,000
_PER_PAGE = 100


class CommentError(MLError):
    """The comment could not be posted (settings missing, the API refused)."""


@dataclass(frozen=True)
class Thread:
    """Where comments of one pull/merge request are listed, created and edited."""

    list_url: str  # GET (paged) and POST
    edit_url: str  # "{id}" is replaced by the comment's id; PATCH (GitHub) or PUT (GitLab)
    edit_method: str
    headers: dict[str, str]
    name: str  # "GitHub pull request #12"


def _need(name: str, value: str | None, hint: str) -> str:
    if not value:
        raise CommentError(f"cannot post the plan comment: {name} is not set", hint=hint)
    return value


def _github_pr_number(env) -> str | None:
    if env.get("ML_CI_PR"):
        return env["ML_CI_PR"]
    path = env.get("GITHUB_EVENT_PATH")
    if path and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                event = json.load(handle)
        except (OSError, ValueError):
            return None
        number = (event.get("pull_request") or {}).get("number") or event.get("number")
        return str(number) if number else None
    return None


def github_thread(env=os.environ) -> Thread:
    api = (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    repo = _need("GITHUB_REPOSITORY", env.get("GITHUB_REPOSITORY"), "GitHub Actions sets it; elsewhere set owner/name")
    number = _need("the pull request number", _github_pr_number(env),
                   "run on a pull_request event, or set ML_CI_PR")
    token = _need("GITHUB_TOKEN", env.get("GITHUB_TOKEN") or env.get("ML_CI_TOKEN"),
                  "pass `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` with `permissions: pull-requests: write`")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    return Thread(list_url=f"{api}/repos/{repo}/issues/{number}/comments",
                  edit_url=f"{api}/repos/{repo}/issues/comments/{{id}}", edit_method="PATCH", headers=headers,
                  name=f"GitHub pull request #{number}")


def gitlab_thread(env=os.environ) -> Thread:
    api = _need("CI_API_V4_URL", env.get("CI_API_V4_URL"), "GitLab CI sets it").rstrip("/")
    project = urllib.parse.quote(_need("CI_PROJECT_ID", env.get("CI_PROJECT_ID"), "GitLab CI sets it"), safe="")
    iid = _need("CI_MERGE_REQUEST_IID", env.get("CI_MERGE_REQUEST_IID") or env.get("ML_CI_PR"),
                "run in a merge request pipeline (rules: if $CI_PIPELINE_SOURCE == 'merge_request_event')")
    token = _need("GITLAB_TOKEN", env.get("GITLAB_TOKEN") or env.get("ML_CI_TOKEN"),
                  "a project access token with the api scope, as a masked CI/CD variable (CI_JOB_TOKEN cannot comment)")
    base = f"{api}/projects/{project}/merge_requests/{iid}/notes"
    return Thread(list_url=base, edit_url=f"{base}/{{id}}", edit_method="PUT",
                  headers={"PRIVATE-TOKEN": token}, name=f"GitLab merge request !{iid}")


def thread_for(where: str, env=os.environ) -> Thread | None:
    """``github``, ``gitlab``, ``none``, or ``auto`` (the CI system this runs in; none outside CI)."""
    if where == "auto":
        where = "github" if env.get("GITHUB_ACTIONS") == "true" else "gitlab" if env.get("GITLAB_CI") == "true" else "none"
    if where == "none":
        return None
    if where == "github":
        return github_thread(env)
    if where == "gitlab":
        return gitlab_thread(env)
    raise CommentError(f"--comment: unknown place {where!r} (auto, github, gitlab or none)")


def marker_for(project: str) -> str:
    """The hidden line that makes the comment findable again: one comment per project of the repository."""
    return f"<!-- ml-plan: {project} -->"


def _call(thread: Thread, method: str, url: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(thread.headers, **({"Content-Type": "application/json"} if data else {}))
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode("utf-8") or "null"
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise CommentError(f"{thread.name}: {method} {url} answered {exc.code} {exc.reason}: {detail}",
                           hint="check the token's permission to comment") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CommentError(f"{thread.name}: cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommentError(f"{thread.name}: {method} {url} did not answer JSON") from exc


def _find(thread: Thread, marker: str) -> Any:
    page = 1
    while True:
        sep = "&" if "?" in thread.list_url else "?"
        items = _call(thread, "GET", f"{thread.list_url}{sep}per_page={_PER_PAGE}&page={page}")
        if not isinstance(items, list):
            raise CommentError(f"{thread.name}: listing comments did not answer a list")
        for item in items:
            if marker in str(item.get("body") or ""):
                return item.get("id")
        if len(items) < _PER_PAGE:
            return None
        page += 1


def upsert(thread: Thread, marker: str, body: str) -> tuple[str, Any]:
    """Update the comment carrying ``marker``, or create it. Returns ("updated"|"created", its id)."""
    if marker not in body:
        body = f"{marker}\n{body}"
    found = _find(thread, marker)
    if found is not None:
        _call(thread, thread.edit_method, thread.edit_url.format(id=found), {"body": body})
        return "updated", found
    created = _call(thread, "POST", thread.list_url, {"body": body})
    return "created", (created or {}).get("id")
