"""The RQ dashboard under /rq (docs/api.md): admins only, JSON jobs, in a real browser."""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import logging
import pickle
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker, Worker
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.exc import OperationalError

from tests.e2e.support import Server, deployment
from tests.support import AppFactory, Keys
from tokensvc.auth import generate_key, hash_key
from tokensvc.config import next_redis_db
from tokensvc.objects.console import utcnow
from workers.queues import QUEUE_NAME, JSONJob, JSONQueue, queue, worker

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "rq-dashboard.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHALLENGE = 'Basic realm="tokensvc"'
GENERATE = "tokensvc.tokens.generate_token"
# What a browser adds to the dashboard's own XHRs (jQuery's $.post).
OWN_PAGE = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


def basic(password: str, user: str = "admin") -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the mounted app, through the Flask test client ----------------------------------------
class Dashboard:
    def __init__(self, app: Flask, queue_redis: redis.Redis) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.keys = Keys(app)
        self.admin = self.keys.mint("admin")
        self.queue_redis = queue_redis

    def get(self, path: str, key: str | None = None) -> Any:
        return self.client.get(path, headers=bearer(key if key is not None else self.admin))

    def post(self, path: str) -> Any:
        """A POST as the dashboard's own buttons send it (from its own origin)."""
        return self.client.post(path, headers=bearer(self.admin) | OWN_PAGE)


@pytest.fixture
def dashboard(make_app: AppFactory, mariadb_url: str, redis_url: str) -> Iterator[Dashboard]:
    queue_redis = redis.Redis.from_url(next_redis_db(redis_url))
    queue_redis.flushdb()
    yield Dashboard(make_app(database_url=mariadb_url, redis_url=redis_url), queue_redis)
    queue_redis.flushdb()
    queue_redis.close()


def assert_challenge(answer: Any) -> None:
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == CHALLENGE
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["type"] == "/problems/unauthorized"


def test_without_credentials_is_a_basic_challenge(dashboard: Dashboard) -> None:
    for path in ("/rq", "/rq/", "/rq/0/data/queues.json", "/rq/static/css/main.css"):
        assert_challenge(dashboard.client.get(path))


@pytest.mark.parametrize(
    "headers",
    [
        basic("garbage"),
        basic("tsk_" + "A" * 43),  # shaped like a key, but unknown
        basic("tsk_" + "é" * 43),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Basic"},
        {"Authorization": "Bearer garbage"},
        bearer("tsk_" + "B" * 43),
        {"Authorization": "Digest username=admin"},
    ],
    ids=lambda headers: headers["Authorization"][:14],
)
def test_bad_credentials_are_401(dashboard: Dashboard, headers: dict[str, str]) -> None:
    assert_challenge(dashboard.client.get("/rq/", headers=headers))


def test_revoked_or_expired_admin_keys_are_401(dashboard: Dashboard) -> None:
    revoked, expired = generate_key(), generate_key()
    store = dashboard.keys.store
    store.revoke(store.create(hash_key(revoked), "admin").id)
    store.create(hash_key(expired), "admin", expires_at=utcnow() - dt.timedelta(seconds=1))
    for key in (revoked, expired):
        assert_challenge(dashboard.client.get("/rq/", headers=basic(key)))


@pytest.mark.parametrize("role", ["proxy", "compute"])
def test_other_roles_are_403(dashboard: Dashboard, role: str) -> None:
    key = dashboard.keys.mint(role, host="compute-1" if role == "compute" else None)
    for headers in (basic(key), bearer(key)):
        answer = dashboard.client.get("/rq/", headers=headers)
        assert answer.status_code == 403
        assert answer.get_json()["type"] == "/problems/forbidden"
        assert "WWW-Authenticate" not in answer.headers


@pytest.mark.parametrize("user", ["admin", "", "anyone at all"])
def test_basic_with_an_admin_key_and_any_user_name(dashboard: Dashboard, user: str) -> None:
    answer = dashboard.client.get("/rq/", headers=basic(dashboard.admin, user))
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    assert "<title>RQ dashboard</title>" in html
    # Its links and assets live under the mount point.
    assert 'href="/rq/static/css/main.css"' in html
    assert 'href="/rq/0/view/jobs"' in html


def test_bearer_admin_key_and_the_assets(dashboard: Dashboard) -> None:
    page = dashboard.get("/rq/")
    assert page.status_code == 200
    assert "RQ dashboard" in page.get_data(as_text=True)
    for asset in ("/rq/static/css/main.css", "/rq/static/js/jquery-3.5.1.min.js"):
        assert dashboard.get(asset).status_code == 200
    assert dashboard.get("/rq/0/view/workers").status_code == 200


def test_shows_the_json_jobs(dashboard: Dashboard) -> None:
    jobs = queue(dashboard.queue_redis)
    first = jobs.enqueue(GENERATE, "compute-1", batch=500)
    second = jobs.enqueue(GENERATE)

    queues = dashboard.get("/rq/0/data/queues.json").get_json()["queues"]
    assert [(q["name"], q["count"]) for q in queues] == [(QUEUE_NAME, 2)]

    listed = dashboard.get(f"/rq/0/data/jobs/{QUEUE_NAME}/queued/8/asc/1.json")
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["name"] == QUEUE_NAME
    assert [(job["id"], job["description"]) for job in body["jobs"]] == [
        (first.id, f"{GENERATE}('compute-1', batch=500)"),
        (second.id, f"{GENERATE}()"),
    ]

    # The job's own view: read with the JSON serializer (its meta, its result).
    answer = dashboard.get(f"/rq/0/data/job/{first.id}.json")
    assert answer.status_code == 200
    detail = answer.get_json()
    assert detail["description"] == f"{GENERATE}('compute-1', batch=500)"
    assert (detail["origin"], detail["status"], detail["result"]) == (QUEUE_NAME, "queued", None)
    assert json.loads(detail["metadata"]) == {}
    assert dashboard.get(f"/rq/0/view/job/{first.id}").status_code == 200
    assert dashboard.get(f"/rq/0/view/jobs/{QUEUE_NAME}/queued/8/asc/1").status_code == 200


def test_shows_results_and_failures_of_json_jobs(dashboard: Dashboard) -> None:
    jobs = queue(dashboard.queue_redis)
    done = jobs.enqueue("builtins.max", 3, 9)
    failed = jobs.enqueue("builtins.int", "not-a-number")
    SimpleWorker(
        [jobs],
        connection=dashboard.queue_redis,
        serializer=JSONSerializer,
        job_class=JSONJob,
        queue_class=JSONQueue,
    ).work(burst=True, max_jobs=2)

    finished = dashboard.get(f"/rq/0/data/jobs/{QUEUE_NAME}/finished/8/asc/1.json").get_json()
    assert [job["description"] for job in finished["jobs"]] == ["builtins.max(3, 9)"]
    # The result is read back with the JSON serializer (pickle would fail on it).
    detail = dashboard.get(f"/rq/0/data/job/{done.id}.json").get_json()
    assert (detail["status"], detail["result"]) == ("finished", 9)

    failures = dashboard.get(f"/rq/0/data/jobs/{QUEUE_NAME}/failed/8/asc/1.json").get_json()
    assert [job["description"] for job in failures["jobs"]] == ["builtins.int('not-a-number')"]
    detail = dashboard.get(f"/rq/0/data/job/{failed.id}.json").get_json()
    assert detail["status"] == "failed"
    assert "ValueError" in detail["exc_info"]


class Exploit:
    """Unpickling this creates ``path``: proof that someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def busy_worker(dashboard: Dashboard, job: Job) -> Worker:
    """A registered JSON worker that is running ``job`` (as far as Redis can tell)."""
    busy = worker(dashboard.queue_redis)
    busy.register_birth()
    with dashboard.queue_redis.pipeline() as pipe:
        Execution.create(job, ttl=60, pipeline=pipe, worker_name=busy.name)
        pipe.execute()
    return busy


def test_shows_the_json_job_a_worker_runs(dashboard: Dashboard) -> None:
    running = queue(dashboard.queue_redis).enqueue(GENERATE, "compute-3")
    busy = busy_worker(dashboard, running)
    answer = dashboard.get("/rq/0/data/workers.json")
    assert answer.status_code == 200
    [shown] = answer.get_json()["workers"]
    assert shown["name"] == busy.name
    assert shown["queues"] == [QUEUE_NAME]
    assert shown["current_job"]["job_id"] == running.id
    # Rebuilt from the job's (JSON) data: pickle would fail here.
    assert shown["current_job"]["call_string"] == f"{GENERATE}('compute-3')"
    assert dashboard.get("/rq/0/view/workers").status_code == 200


def test_never_unpickles_a_foreign_job(dashboard: Dashboard, tmp_path: Path) -> None:
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(Exploit(armed)))  # the payload is live
    assert armed.exists()
    marker = tmp_path / "unpickled"
    # A pickled job (RQ's default serializer), its data and its meta both booby-trapped.
    pickled = Queue(QUEUE_NAME, connection=dashboard.queue_redis).enqueue(
        print, Exploit(marker), meta={"trap": Exploit(marker)}
    )
    queue(dashboard.queue_redis).enqueue(GENERATE, "compute-2")
    busy_worker(dashboard, pickled)

    # The list shows the descriptions stored at enqueue time: one foreign job spoils nothing.
    listed = dashboard.get(f"/rq/0/data/jobs/{QUEUE_NAME}/queued/8/asc/1.json")
    assert listed.status_code == 200
    assert f"{GENERATE}('compute-2')" in [job["description"] for job in listed.get_json()["jobs"]]
    answers = [
        dashboard.get(f"/rq/0/data/job/{pickled.id}.json"),
        dashboard.get(f"/rq/0/view/job/{pickled.id}"),
        dashboard.get("/rq/0/data/workers.json"),
        dashboard.post(f"/rq/job/{pickled.id}/requeue"),
        dashboard.post(f"/rq/requeue/{QUEUE_NAME}"),
        dashboard.post(f"/rq/job/{pickled.id}/delete"),
    ]
    for answer in answers:
        assert "Traceback" not in answer.get_data(as_text=True)
    assert not marker.exists()


def test_actions_only_from_the_dashboard_itself(dashboard: Dashboard) -> None:
    """Basic credentials ride along on any request a browser sends: no cross-site actions."""
    jobs = queue(dashboard.queue_redis)
    jobs.enqueue(GENERATE, "compute-4")
    empty = f"/rq/queue/{QUEUE_NAME}/queued/empty"
    for mode in ("cors", "no-cors", "navigate"):
        forged = {**basic(dashboard.admin), "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": mode}
        answer = dashboard.client.post(empty, headers=forged)
        assert answer.status_code == 403
        assert answer.get_json()["type"] == "/problems/forbidden"
    image = {**basic(dashboard.admin), "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert dashboard.client.get(f"/rq/requeue/{QUEUE_NAME}", headers=image).status_code == 403
    assert jobs.count == 1
    # A link from elsewhere still opens the dashboard.
    link = {**basic(dashboard.admin), "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert dashboard.client.get("/rq/", headers=link).status_code == 200
    # The dashboard's own buttons (same origin) work.
    answer = dashboard.client.post(empty, headers=basic(dashboard.admin) | OWN_PAGE)
    assert (answer.status_code, answer.get_json()) == (200, {"status": "OK"})
    assert jobs.count == 0


def failed_job(dashboard: Dashboard) -> JSONQueue:
    """The queue, with one job in its failed registry."""
    return fail_a_job(dashboard.queue_redis)


def fail_a_job(queue_redis: redis.Redis) -> JSONQueue:
    """The queue on ``queue_redis``, once a worker failed one more job of it."""
    jobs = queue(queue_redis)
    jobs.enqueue("builtins.int", "not-a-number")
    SimpleWorker(
        [jobs],
        connection=queue_redis,
        serializer=JSONSerializer,
        job_class=JSONJob,
        queue_class=JSONQueue,
    ).work(burst=True, max_jobs=1)
    assert (jobs.count, jobs.failed_job_registry.count) == (0, 1)
    return jobs


ACTIONS = [
    f"/rq/requeue/{QUEUE_NAME}",
    f"/rq/queue/{QUEUE_NAME}/queued/empty",
    f"/rq/queue/{QUEUE_NAME}/failed/empty",
    f"/rq/queue/{QUEUE_NAME}/compact",
    "/rq/job/0123456789abcdef/requeue",
    "/rq/job/0123456789abcdef/delete",
]


@pytest.mark.parametrize("path", ACTIONS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_actions_are_never_a_get(dashboard: Dashboard, path: str, method: str) -> None:
    """A link, an <img> or a typed URL changes nothing: 405, whoever sends it."""
    jobs = failed_job(dashboard)
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    for site in ({}, OWN_PAGE, link):
        answer = dashboard.client.open(path, method=method, headers=bearer(dashboard.admin) | site)
        if site is link and method == "HEAD":  # no link makes a HEAD: refused as cross-site
            assert answer.status_code == 403
            continue
        assert answer.status_code == 405
        assert answer.headers["Allow"] == "POST"
        if method == "GET":
            assert answer.get_json()["type"] == "/problems/method-not-allowed"
    assert (jobs.count, jobs.failed_job_registry.count) == (0, 1)
    # Pages and data stay readable by a GET.
    for page in ("/rq/", f"/rq/0/view/jobs/{QUEUE_NAME}/failed/8/asc/1", "/rq/0/data/queues.json"):
        assert dashboard.get(page).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
        {"Origin": "localhost"},
        {"Referer": "http://localhost/rq/"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
    ids=lambda headers: " ".join(f"{k}={v}" for k, v in headers.items()) or "none",
)
def test_a_post_from_elsewhere_is_403(dashboard: Dashboard, headers: dict[str, str]) -> None:
    jobs = failed_job(dashboard)
    answer = dashboard.client.post(
        f"/rq/requeue/{QUEUE_NAME}", headers=basic(dashboard.admin) | headers
    )
    assert answer.status_code == 403
    assert answer.get_json()["type"] == "/problems/forbidden"
    assert (jobs.count, jobs.failed_job_registry.count) == (0, 1)


@pytest.mark.parametrize(
    "headers",
    [OWN_PAGE, {"Origin": "http://localhost"}, {"Origin": "https://LOCALHOST"}],
    ids=["sec-fetch-site", "origin", "origin-https"],
)
def test_a_post_from_the_dashboard_requeues(dashboard: Dashboard, headers: dict[str, str]) -> None:
    """Browsers without Sec-Fetch-* still send Origin on a POST: its host must be ours."""
    jobs = failed_job(dashboard)
    answer = dashboard.client.post(
        f"/rq/requeue/{QUEUE_NAME}", headers=basic(dashboard.admin) | headers
    )
    assert (answer.status_code, answer.get_json()) == (200, {"status": "OK", "count": 1})
    assert (jobs.count, jobs.failed_job_registry.count) == (1, 0)


def test_a_post_from_elsewhere_without_a_key_is_still_403(dashboard: Dashboard) -> None:
    answer = dashboard.client.post(f"/rq/requeue/{QUEUE_NAME}", headers={"Origin": "http://x"})
    assert answer.status_code == 403


def test_database_down_is_503(dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(key_hash: str) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(dashboard.keys.store, "find", unreachable)
    fresh = "tsk_" + "C" * 43  # not cached: the check needs the database
    answer = dashboard.client.get("/rq/", headers=basic(fresh))
    assert answer.status_code == 503
    assert answer.get_json()["type"] == "/problems/backend-unavailable"
    assert answer.headers["Retry-After"] == "2"


def test_keys_stay_out_of_the_logs(dashboard: Dashboard, caplog: pytest.LogCaptureFixture) -> None:
    proxy = dashboard.keys.mint("proxy")
    unknown = "tsk_" + "D" * 43
    caplog.set_level(logging.DEBUG)
    for headers in (basic(dashboard.admin), bearer(proxy), basic(unknown), bearer(unknown)):
        dashboard.client.get("/rq/", headers=headers)
    for key in (dashboard.admin, proxy, unknown):
        assert key not in caplog.text


def test_the_api_is_not_behind_the_dashboard_auth(dashboard: Dashboard) -> None:
    assert dashboard.client.get("/healthz").status_code == 200
    assert dashboard.client.get("/rqx").status_code == 404  # not the mount point


# -- a real `tokensvc serve`, in headless Chromium ------------------------------------------
def _install_chromium() -> str | None:
    """Why Chromium and its driver are missing after an install attempt, or None."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None:
        return "no apt-get to install chromium with"
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"])
    for step in steps:
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{' '.join(step)}: {error}"
        if done.returncode != 0:
            return f"{' '.join(step)} failed ({done.returncode}): {done.stderr[-500:]}"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"installed, yet {CHROMIUM} or {CHROMEDRIVER} is missing"
    return None


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium and chromedriver, installed once (apt) if missing."""
    pytest.importorskip("selenium", reason="selenium is in the test extras: pip install selenium")
    # One install at a time, also across xdist workers (apt holds its own lock and fails).
    with open(Path(tempfile.gettempdir()) / "tokensvc-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = _install_chromium()
    if missing is not None:
        pytest.skip(f"headless Chromium unavailable: {missing}")
    return CHROMIUM


class Served:
    def __init__(self, server: Server, admin: str, queue_redis: redis.Redis) -> None:
        self.server = server
        self.admin = admin
        self.queue_redis = queue_redis


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`tokensvc serve` on its own MariaDB database and its own Redis (queue: db 1)."""
    with deployment("dash", tmp_path_factory.mktemp("dash")) as (server, redis_url):
        queue_redis = redis.Redis.from_url(next_redis_db(redis_url))
        admin = server.create_key("admin")
        server.start()
        yield Served(server, admin, queue_redis)
        queue_redis.close()


def headless(chromium: Path, profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # network events
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def statuses(driver: Any, url: str) -> list[int]:
    """The HTTP statuses the browser got for ``url`` since the last call (its network log)."""
    events = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [
        int(event["params"]["response"]["status"])
        for event in events
        if event["method"] == "Network.responseReceived"
        and event["params"]["response"]["url"] == url
    ]


def test_dashboard_in_a_browser(chromium: Path, served: Served, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    job = queue(served.queue_redis).enqueue(GENERATE, "compute-1")
    url = f"{served.server.url}/rq/"
    driver = headless(chromium, tmp_path / "profile")
    try:
        # Without credentials: the challenge (Chromium keeps the prompt to itself).
        driver.get(url)
        assert driver.find_element(By.TAG_NAME, "body").text == ""
        assert set(statuses(driver, url)) == {401}
        plain = requests.get(url, timeout=10)
        assert plain.status_code == 401
        assert plain.headers["WWW-Authenticate"] == CHALLENGE

        # With the admin key as a Bearer header on every request of the page (its XHRs too).
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {served.admin}"}}
        )
        driver.get(url)
        assert set(statuses(driver, url)) == {200}  # (Chromium may fetch a page twice)
        rows = (By.CSS_SELECTOR, "#queues tr[data-role=queue]")
        WebDriverWait(driver, 30).until(
            lambda d: any(QUEUE_NAME in row.text for row in d.find_elements(*rows))
        )
        [row] = driver.find_elements(*rows)
        assert row.text.split()[:2] == [QUEUE_NAME, "1"]
        assert driver.title == "RQ dashboard"
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
        png = SCREENSHOT.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 10_000

        # The queue's jobs page lists the JSON job: function and argument.
        driver.get(f"{served.server.url}/rq/0/view/jobs/{QUEUE_NAME}/queued/8/asc/1")
        call = f"{GENERATE}('compute-1')"
        body = (By.TAG_NAME, "body")
        WebDriverWait(driver, 30).until(lambda d: call in d.find_element(*body).text)
        assert job.id in driver.page_source
    finally:
        driver.quit()
    assert served.admin not in served.server.log.read_text()


def confirm(driver: Any, button: str) -> None:
    """Click one of the dashboard's action buttons and its confirmation dialog's yes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    wait.until(ec.element_to_be_clickable((By.ID, button))).click()
    wait.until(ec.element_to_be_clickable((By.ID, "confirmation-modal-yes"))).click()


def test_dashboard_buttons_in_a_browser(chromium: Path, served: Served, tmp_path: Path) -> None:
    """Its own buttons POST from its own page and work; another page's form or link does not."""
    from selenium.webdriver.support.ui import WebDriverWait

    queue(served.queue_redis).empty()
    jobs = fail_a_job(served.queue_redis)
    failed = jobs.failed_job_registry
    requeue = f"{served.server.url}/rq/requeue/{QUEUE_NAME}"
    driver = headless(chromium, tmp_path / "profile")
    try:
        # The admin key on every request, as a browser resends remembered Basic credentials.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {served.admin}"}}
        )
        # Another page's form (an opaque origin) posting to the action: refused.
        form = (
            f"<form method=post action='{requeue}'></form>"
            "<script>document.forms[0].submit()</script>"
        )
        driver.get(f"data:text/html,{form}")
        answered = WebDriverWait(driver, 30).until(lambda d: statuses(d, requeue))
        assert set(answered) == {403}
        assert (jobs.count, failed.count) == (0, 1)
        # A link or a typed URL (a top-level GET): refused too.
        driver.get(requeue)
        assert set(statuses(driver, requeue)) == {405}
        assert (jobs.count, failed.count) == (0, 1)

        # The failed jobs page's "Requeue All" button.
        driver.get(f"{served.server.url}/rq/0/view/jobs/{QUEUE_NAME}/failed/8/asc/1")
        confirm(driver, "requeue-all-btn")
        WebDriverWait(driver, 30).until(lambda d: (jobs.count, failed.count) == (1, 0))
        # The answer's log entry may come after the job moved (a loaded machine).
        assert set(WebDriverWait(driver, 30).until(lambda d: statuses(d, requeue))) == {200}

        # The queued jobs page's "Empty queue" button.
        driver.get(f"{served.server.url}/rq/0/view/jobs/{QUEUE_NAME}/queued/8/asc/1")
        confirm(driver, "empty-btn")
        WebDriverWait(driver, 30).until(lambda d: jobs.count == 0)
    finally:
        driver.quit()
    assert served.admin not in served.server.log.read_text()
