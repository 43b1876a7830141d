"""An app installed, run and uninstalled through the API with a real supervisor: the
instance runs under bubblewrap beside its gateway, a person's verdict reaches it through
the SDK (it logs what it read), and uninstalling stops it at once (issue 14 acceptance)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from andon.api import create_app
from andon.api.deps import Services
from andon.apps.catalog import Catalog, SupervisedRunner, Who
from andon.apps.repository import SqlAppRepository
from andon.apps.sandbox import SandboxCheck
from andon.apps.supervisor import AppSupervisor
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api import appworld
from tests.api.world import World, demo_yaml


def _supervised(
    world: World, tmp_path_factory: pytest.TempPathFactory, **kw: Any
) -> Iterator[AppSupervisor]:
    """The world's API with a supervisor running installed apps (for one test only)."""
    svc = world.app.state.services
    run_dir = Path(tmp_path_factory.mktemp("run"))
    sup = AppSupervisor(run_dir=run_dir, poll_s=0.1, **kw)
    svc.app_runner = SupervisedRunner(
        sup,
        platform=svc.platform,
        store=svc.store,
        bus=svc.bus,
        sink=appworld.repository(world),
        clock=world.clock,
        data_root=run_dir / "data",
    )
    try:
        yield sup
    finally:
        svc.app_runner = None
        world.run(sup.close)


@pytest.fixture
def running(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppSupervisor]:
    yield from _supervised(world, tmp_path_factory)


@pytest.fixture
def no_sandbox(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppSupervisor]:
    """A supervisor on a machine where bubblewrap cannot run (its check says so)."""
    yield from _supervised(
        world, tmp_path_factory, check=lambda: SandboxCheck(False, "bwrap: not installed (test)")
    )


def test_without_a_sandbox_the_instance_is_refused_and_says_why(
    world: World, no_sandbox: AppSupervisor
) -> None:
    a = world.a
    appworld.publish_probe(world)
    body = {
        "app_id": "probe",
        "version": "0.1.0",
        "site_ids": [a.site_id],
        "accepted_permissions": appworld.PERMS["0.1.0"],
    }
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 201, r.text  # installed (the admin's grant), but not run
    inst = r.json()
    got = world.call("GET", f"/apps/installations/{inst['id']}", a.admin).json()["status"]
    assert got["state"] == "refused"
    assert "bwrap: not installed (test)" in got["last_exit_reason"]
    assert "apps.allow_unsandboxed" in got["last_exit_reason"]
    assert no_sandbox.instances() == []  # nothing ran unsandboxed
    assert world.call("DELETE", f"/apps/installations/{inst['id']}", a.admin).status_code == 204


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``check()``'s first truthy answer, polled until ``timeout`` (then fail naming
    ``what`` and the last answer)."""
    deadline = time.monotonic() + timeout
    got = check()
    while not got:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s; last: {got!r}")
        time.sleep(0.1)
        got = check()
    return got


def test_install_run_feedback_and_uninstall(world: World, running: AppSupervisor) -> None:
    if not running.sandboxed:
        pytest.fail(f"bubblewrap cannot run here: {running.sandbox_check().reason}")
    a = world.a
    appworld.publish_probe(world)
    body = {
        "app_id": "probe",
        "version": "0.1.0",
        "site_ids": [a.site_id],
        "accepted_permissions": appworld.PERMS["0.1.0"],
    }
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    path = f"/apps/installations/{iid}"

    def status() -> dict[str, Any]:
        got: dict[str, Any] = world.call("GET", path, a.admin).json()["status"]
        return got

    st = _until("instance running", lambda: status()["state"] == "running" and status())
    assert st["sandboxed"] is True
    fid = appworld.add_finding(world, a, iid)
    r = world.call(
        "POST",
        f"/sites/{a.site_id}/findings/{fid}/feedback",
        a.admin,
        {"verdict": "confirmed", "comment": "replaced the bearing"},
    )
    assert r.status_code == 200, r.text

    def logged() -> list[str]:
        lines = world.call("GET", f"{path}/logs", a.admin).json()
        return [x["text"] for x in lines if f"{fid}: confirmed" in x["text"]]

    _until("the app logs the verdict it read through the SDK", logged)
    pid = running.status(iid).pid
    assert pid is not None
    assert world.call("DELETE", path, a.admin).status_code == 204
    assert status()["state"] == "not running"
    assert str(running.status(iid).state) == "stopped"
    assert not Path(f"/proc/{pid}").exists()


def test_installed_instances_start_with_the_api_and_stop_with_it(tmp_path: Path) -> None:
    """``create_app(app_runner=...)``: the lifespan starts every installed instance, and
    shutting down stops them; the next start runs them again."""
    store = DuckDBStore.open(None)
    sups: list[AppSupervisor] = []

    def runner(svc: Services) -> SupervisedRunner:
        sups.append(AppSupervisor(poll_s=0.1))  # its own short run dir: socket paths
        return SupervisedRunner(
            sups[-1],
            platform=svc.platform,
            store=svc.store,
            bus=svc.bus,
            sink=SqlAppRepository(svc.platform.db, svc.clock),
            clock=svc.clock,
            data_root=tmp_path / "data",
        )

    cfg = Settings(database_url=f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        with TestClient(create_app(cfg, store=store, app_runner=runner)) as client:
            svc = client.app.state.services  # type: ignore[attr-defined]
            pf = svc.platform

            async def install() -> str:
                await pf.create_tenant("t1", "T1")
                site = await pf.create_site("t1", demo_yaml())
                cat = Catalog(pf.db, pf.audit, SqlAppRepository(pf.db, svc.clock), svc.clock,
                              runner=svc.app_runner)  # fmt: skip
                d = appworld.APP_DIRS["0.1.0"]
                await cat.publish(d, appworld.report_of(d), Who("cli"))
                inst = await cat.install(
                    "t1", Who("cli"), "probe", site_ids=[site["id"]],
                    accepted_permissions=appworld.PERMS["0.1.0"],
                )  # fmt: skip
                return str(inst["id"])

            portal = client.portal
            assert portal is not None
            iid = portal.call(install)
            first = sups[0]
            portal.call(first.wait_for, iid, lambda s: str(s.state) == "running", 30.0)
        assert str(first.status(iid).state) == "stopped"  # shut down with the API
        with TestClient(create_app(cfg, store=store, app_runner=runner)) as client:
            portal = client.portal
            assert portal is not None
            st = portal.call(sups[1].wait_for, iid, lambda s: str(s.state) == "running", 30.0)
            assert st.sandboxed and st.pid is not None
    finally:
        asyncio.run(store.close())
