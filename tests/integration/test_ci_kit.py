"""The CI kit (examples/ci) exercised, not just shipped: the `ml` steps of the GitHub Actions and GitLab CI
files, run as written, in a local git repository with pull-request branches and merges, against a real
PostgreSQL state. The comment APIs of GitHub and GitLab cannot be reached from here: a local stand-in
answers their three calls (list, create, edit) and keeps the comments, so the in-place update is checked.

The project uses the example third-party plugin (DataSnapshot, a file copy), so each apply is quick.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "examples" / "ci"
SERVER = os.environ.get("ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

SNAPSHOT = """\
kind: DataSnapshot
name: {name}
path: data/{name}.csv
keep: {keep}
"""
POLICY = """\
policies:
  - name: few-copies
    description: A snapshot keeps at most 5 copies.
    level: hard-mandatory
    kinds: [DataSnapshot]
    require: "spec.keep <= `5`"
"""


# -- the stand-in for GitHub's and GitLab's comment APIs -----------------------------------------------------


class CommentAPI:
    """Comments by thread; answers GitHub's issue-comment and GitLab's note calls, checking the token."""

    GITHUB = re.compile(r"^/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments$")
    GITHUB_EDIT = re.compile(r"^/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)$")
    GITLAB = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/merge_requests/(?P<iid>\d+)/notes(/(?P<id>\d+))?$")

    def __init__(self):
        self.threads: dict[str, list[dict]] = {}
        self.calls: list[tuple[str, str]] = []
        self._next = 100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                status, body = api.handle(self.command, self.path, self.headers, self._body())
                self._answer(status, body)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            do_GET = do_POST = do_PATCH = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, method, raw_path, headers, body):
        path, _, query = raw_path.partition("?")
        self.calls.append((method, path))
        page = int(dict(p.split("=") for p in query.split("&") if "=" in p).get("page", 1))
        github, github_edit, gitlab = self.GITHUB.match(path), self.GITHUB_EDIT.match(path), self.GITLAB.match(path)
        if github or github_edit:
            if headers.get("Authorization") != "Bearer gh-token":
                return 401, {"message": "Bad credentials"}
        elif gitlab:
            if headers.get("PRIVATE-TOKEN") != "gl-token":
                return 401, {"message": "401 Unauthorized"}
        else:
            return 404, {"message": "Not Found"}
        if github:
            thread = self.threads.setdefault(f"github:{github['repo']}#{github['number']}", [])
        elif gitlab:
            thread = self.threads.setdefault(f"gitlab:{gitlab['project']}!{gitlab['iid']}", [])
        if method == "GET":
            return 200, thread[(page - 1) * 100: page * 100]
        if method == "POST" and (github or (gitlab and not gitlab["id"])):
            self._next += 1
            thread.append({"id": self._next, "body": body["body"]})
            return 201, thread[-1]
        wanted = int((github_edit or gitlab)["id"])
        edit = "PATCH" if github_edit else "PUT"
        for comments in self.threads.values():
            for comment in comments:
                if comment["id"] == wanted and method == edit:
                    comment["body"] = body["body"]
                    return 200, comment
        return 404, {"message": "Not Found"}

    def close(self):
        self.server.shutdown()


@pytest.fixture
def comments():
    api = CommentAPI()
    yield api
    api.close()


# -- a project in a git repository ---------------------------------------------------------------------------


@pytest.fixture
def schema():
    import psycopg

    name = f"ml_ci_{uuid.uuid4().hex[:12]}"
    dsn = SERVER.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {SERVER}: {exc}")
    yield name
    conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    conn.close()


class Repo:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def run(self, line: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(line, shell=True, cwd=self.root, capture_output=True, text=True,
                              env=dict(self.env, **(extra or {})), timeout=300)


@pytest.fixture
def repo(tmp_path, schema):
    root = tmp_path / "repo"
    root.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(ROOT / "examples" / "plugin-snapshots"),
                                           os.environ.get("PYTHONPATH", "")]),
               ML_STATE_URL=f"{SERVER}?schema={schema}", NO_COLOR="1", GIT_AUTHOR_NAME="dev",
               GIT_AUTHOR_EMAIL="dev@example.com", GIT_COMMITTER_NAME="dev", GIT_COMMITTER_EMAIL="dev@example.com")
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "ML_ACTOR"):
        env.pop(name, None)
    r = Repo(root, env)
    r.git("init", "-q", "-b", "main")
    r.write("ml.yaml", "name: snapshots\nplugins:\n  local: {snapshots: \"ml_snapshots:plugin\"}\n")
    r.write(".gitignore", ".ml/\nml-plan/\n")
    r.write("data/a.csv", "x\n1\n")
    r.write("data/b.csv", "y\n2\n")
    r.write("specs/a.yaml", SNAPSHOT.format(name="a", keep=2))
    r.write("policies/rules.yaml", POLICY)
    r.commit("a snapshot of a.csv")
    boot = r.run("ml plan -out boot.json && ml apply boot.json && rm boot.json")
    assert boot.returncode == 0, boot.stdout + boot.stderr
    return r


def ml_lines(kind: str, job: str) -> list[str]:
    """The `ml ...` commands of one job of the shipped file, exactly as written."""
    if kind == "github":
        data = yaml.safe_load((KIT / "github-actions.yml").read_text())
        lines = [line.strip() for step in data["jobs"][job]["steps"] for line in str(step.get("run", "")).splitlines()]
    else:
        data = yaml.safe_load((KIT / "gitlab-ci.yml").read_text())
        lines = [line.strip() for item in data[job]["script"] for line in str(item).splitlines()]
    found = [line for line in lines if line.startswith("ml ")]
    assert found, f"{kind} job {job} runs no ml command"
    return found


def run_job(repo: Repo, kind: str, job: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = None
    for line in ml_lines(kind, job):
        result = repo.run(line, env)
        if result.returncode != 0:
            return result
    return result


def github_env(api: CommentAPI, tmp_path: Path, number: int) -> dict[str, str]:
    event = tmp_path / f"event-{number}.json"
    event.write_text(json.dumps({"pull_request": {"number": number}}))
    return {"GITHUB_ACTIONS": "true", "GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "team/ml-project",
            "GITHUB_TOKEN": "gh-token", "GITHUB_EVENT_PATH": str(event)}


def gitlab_env(api: CommentAPI, iid: int) -> dict[str, str]:
    return {"GITLAB_CI": "true", "CI_API_V4_URL": f"{api.url}/api/v4", "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": str(iid), "GITLAB_TOKEN": "gl-token"}


def pull_request(repo: Repo, branch: str, files: dict[str, str], message: str) -> None:
    repo.git("checkout", "-q", "-b", branch, "main")
    for rel, text in files.items():
        repo.write(rel, text)
    repo.commit(message)


def merge(repo: Repo, branch: str) -> None:
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)


def keep_artifact(repo: Repo, name: str) -> Path:
    """What the upload/download-artifact steps do between the two jobs."""
    saved = repo.root.parent / "artifacts" / name
    saved.mkdir(parents=True, exist_ok=True)
    for file in ("plan.json", "plan.md"):
        (saved / file).write_bytes((repo.root / "ml-plan" / file).read_bytes())
    return saved


def restore_artifact(repo: Repo, saved: Path) -> None:
    (repo.root / "ml-plan").mkdir(exist_ok=True)
    for file in saved.iterdir():
        (repo.root / "ml-plan" / file.name).write_bytes(file.read_bytes())


def state_addresses(repo: Repo) -> list[str]:
    listed = repo.run("ml state list")
    assert listed.returncode == 0, listed.stderr
    return sorted(set(re.findall(r"datasnapshot\.\w+", listed.stdout)))


# -- the tests ------------------------------------------------------------------------------------------------


def test_github_pull_request_is_planned_commented_once_and_applied_on_merge(repo, comments, tmp_path):
    env = github_env(comments, tmp_path, 7)
    pull_request(repo, "more-snapshots", {"specs/a.yaml": SNAPSHOT.format(name="a", keep=3),
                                          "specs/b.yaml": SNAPSHOT.format(name="b", keep=2)}, "b, and keep 3 of a")
    first = run_job(repo, "github", "plan", env)
    assert first.returncode == 0, first.stdout + first.stderr
    (thread,) = comments.threads.values()
    assert len(thread) == 1
    body = thread[0]["body"]
    assert body.startswith("<!-- ml-plan: snapshots -->")
    assert "Plan: 1 to add, 1 to change, 0 to replace, 0 to destroy." in body
    assert "`datasnapshot.b`" in body and "few-copies" in body
    commit = repo.git("rev-parse", "--short=12", "HEAD").strip()
    assert f"commit `{commit}`" in body

    # Another push to the branch: the same comment, updated.
    repo.write("data/b.csv", "y\n2\n3\n")
    repo.commit("more rows in b")
    second = run_job(repo, "github", "plan", env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(thread) == 1 and thread[0]["body"] != body
    assert ("PATCH", f"/repos/team/ml-project/issues/comments/{thread[0]['id']}") in comments.calls
    saved = keep_artifact(repo, "pr-7")

    merge(repo, "more-snapshots")
    restore_artifact(repo, saved)
    applied = run_job(repo, "github", "apply", {})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert state_addresses(repo) == ["datasnapshot.a", "datasnapshot.b"]
    report = json.loads((repo.root / "ml-plan" / "report.json").read_text())
    assert report["ok"] and report["summary"]["added"] == 1 and report["summary"]["changed"] == 1
    assert repo.run("ml plan --detailed-exitcode").returncode == 0  # applied exactly what the specs say


def test_a_plan_made_before_another_merge_applied_is_refused(repo, comments, tmp_path):
    pull_request(repo, "first", {"specs/a.yaml": SNAPSHOT.format(name="a", keep=4)}, "keep 4")
    assert run_job(repo, "github", "plan", github_env(comments, tmp_path, 1)).returncode == 0
    first = keep_artifact(repo, "pr-1")
    pull_request(repo, "second", {"specs/b.yaml": SNAPSHOT.format(name="b", keep=1)}, "snapshot b")
    assert run_job(repo, "github", "plan", github_env(comments, tmp_path, 2)).returncode == 0
    second = keep_artifact(repo, "pr-2")
    assert len(comments.threads) == 2  # one comment per pull request

    merge(repo, "first")
    restore_artifact(repo, first)
    assert run_job(repo, "github", "apply", {}).returncode == 0
    merge(repo, "second")
    restore_artifact(repo, second)
    stale = run_job(repo, "github", "apply", {})
    assert stale.returncode == 1
    assert "the saved plan is stale" in stale.stderr and "ml plan -out" in stale.stderr
    assert state_addresses(repo) == ["datasnapshot.a"]  # nothing of the stale plan was applied


def test_a_policy_failure_and_an_unformatted_file_fail_the_job_after_commenting(repo, comments, tmp_path):
    env = github_env(comments, tmp_path, 3)
    pull_request(repo, "too-many", {"specs/a.yaml": SNAPSHOT.format(name="a", keep=50)}, "keep 50")
    blocked = run_job(repo, "github", "plan", env)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    (thread,) = comments.threads.values()
    assert "🛑 Policy checks: 1 mandatory failed — apply is blocked" in thread[0]["body"]
    assert "`datasnapshot.a`: A snapshot keeps at most 5 copies." in thread[0]["body"]

    repo.write("specs/a.yaml", "kind:   DataSnapshot\nname: a\npath: data/a.csv\nkeep:    2\n")
    repo.commit("back to 2, badly laid out")
    unformatted = run_job(repo, "github", "plan", env)
    assert unformatted.returncode == 2, unformatted.stdout + unformatted.stderr
    assert len(thread) == 1
    assert "⚠️ `ml fmt --check`: 1 file needs formatting (run `ml fmt`): `specs/a.yaml`" in thread[0]["body"]

    repo.write("specs/a.yaml", "kind: DataSnapshot\nname: a\npath: data/a.csv\nkeep: [2\n")
    repo.commit("broken YAML")
    broken = run_job(repo, "github", "plan", env)
    assert broken.returncode == 1
    assert "#### ❌ `ml validate` failed" in thread[0]["body"]
    assert "specs/a.yaml:5: YAML syntax error" in thread[0]["body"]


def test_gitlab_merge_request_gets_one_note_updated_in_place(repo, comments, tmp_path):
    env = gitlab_env(comments, 5)
    pull_request(repo, "mr-5", {"specs/b.yaml": SNAPSHOT.format(name="b", keep=2)}, "snapshot b")
    assert run_job(repo, "gitlab", "ml-plan", env).returncode == 0
    repo.write("specs/b.yaml", SNAPSHOT.format(name="b", keep=3))
    repo.commit("keep 3")
    again = run_job(repo, "gitlab", "ml-plan", env)
    assert again.returncode == 0, again.stdout + again.stderr
    (thread,) = comments.threads.values()
    assert len(thread) == 1 and "Plan: 1 to add" in thread[0]["body"]
    assert ("PUT", f"/api/v4/projects/42/merge_requests/5/notes/{thread[0]['id']}") in comments.calls
    saved = keep_artifact(repo, "mr-5")
    merge(repo, "mr-5")
    restore_artifact(repo, saved)
    applied = run_job(repo, "gitlab", "ml-apply", {})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert state_addresses(repo) == ["datasnapshot.a", "datasnapshot.b"]


def test_missing_settings_and_a_refused_token_are_clear_errors(repo, comments, tmp_path):
    env = github_env(comments, tmp_path, 9)
    del env["GITHUB_TOKEN"]
    missing = repo.run("ml ci plan", env)
    assert missing.returncode == 1 and "GITHUB_TOKEN is not set" in missing.stderr
    assert not (repo.root / "plan.json").exists()  # found out before any work
    refused = repo.run("ml ci plan", dict(github_env(comments, tmp_path, 9), GITHUB_TOKEN="wrong"))
    assert refused.returncode == 1 and "answered 401" in refused.stderr and "Traceback" not in refused.stderr
