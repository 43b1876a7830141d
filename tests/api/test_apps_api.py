"""The app catalog, installations and the findings inbox through the API (issue 14 items 5
and 6), on both metadata backends: what the admin sees and accepts, every change audited,
uninstall ending access at once, verdicts going back to the app through the ``AppSink``."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from andon.apps.catalog import Who, grant_of
from andon.apps.sinks import StateLimitExceeded
from andon.platform import Role
from andon.platform.service import Conflict, Invalid, NotFound
from andon.sdk import WorkOrder
from tests.api import appworld
from tests.api.world import World

H = dict[str, str]


def _audit(w: World, action: str) -> list[dict[str, Any]]:
    """Tenant A's audit entries of ``action``, oldest first."""
    rows = w.run(lambda: w.platform.audit.query(w.a.id, action=action, limit=100_000))
    return [asdict(e) for e in rows]


def test_catalog_shows_claims_beside_measured_figures(world: World) -> None:
    appworld.publish_probe(world)
    r = world.call("GET", "/apps/catalog", world.b.app)  # any credential of any tenant
    assert r.status_code == 200, r.text
    probe = next(a for a in r.json() if a["app_id"] == "probe")
    assert probe["version"] == "0.2.0" and probe["versions"][:2] == ["0.2.0", "0.1.0"]
    assert probe["manifest"]["name"] == {"en": "Spindle probe", "zh-TW": "主軸探測"}
    assert {c["metric"]: c["target"] for c in probe["manifest"]["claims"]} == {
        "precision": 0.8,
        "recall": 0.7,
    }
    assert probe["figures"]["measured"] == {"precision": pytest.approx(0.7), "recall": None}
    assert probe["figures"]["run"]["datasets"] == 3
    assert "states:read" in probe["manifest"]["permissions"]
    r = world.call("GET", "/apps/catalog/probe", world.a.admin, version="0.1.0")
    assert r.status_code == 200
    assert [c["name"] for c in r.json()["report"]["checks"]] == ["manifest"]
    assert r.json()["figures"]["measured"]["precision"] == pytest.approx(0.8)
    assert world.call("GET", "/apps/catalog/nothing", world.a.admin).status_code == 404
    assert world.call("GET", "/apps/catalog", world.a.board).status_code == 403


def test_publish_refuses_failed_foreign_or_repeated_reports(world: World, tmp_path: Path) -> None:
    cat = appworld.catalog(world)
    d = appworld.APP_DIRS["0.1.0"]
    failed = {**appworld.report_of(d), "ok": False}
    failed["checks"] = [{"name": "permission_probes", "ok": False, "detail": "", "figures": {}}]
    with pytest.raises(Invalid, match=r"did not pass.*permission_probes"):
        world.run(cat.publish, d, failed, Who("cli"))
    other = appworld.report_of(appworld.APP_DIRS["0.2.0"])
    with pytest.raises(Invalid, match=r"report: is for 'probe' '0\.2\.0'"):
        world.run(cat.publish, d, other, Who("cli"))
    appworld.publish_probe(world)
    with pytest.raises(Conflict):
        world.run(cat.publish, d, appworld.report_of(d), Who("cli"))
    (tmp_path / "andon-app.yaml").write_text("id: x\n", encoding="utf-8")
    with pytest.raises(Invalid, match=r"manifest: .*andon-app.yaml:1"):
        world.run(cat.publish, tmp_path, appworld.report_of(d), Who("cli"))


def test_install_checks_permissions_sites_and_settings(world: World) -> None:
    appworld.publish_probe(world)
    a = world.a
    body: dict[str, Any] = {
        "app_id": "probe",
        "version": "0.1.0",
        "site_ids": [a.site_id],
        "accepted_permissions": ["telemetry:read"],
    }
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 422 and "accept exactly" in r.text
    body["accepted_permissions"] = appworld.PERMS["0.1.0"]
    r = world.call("POST", "/apps/installations", a.admin, {**body, "site_ids": [world.b.site_id]})
    assert r.status_code == 404  # B's site is not in A's tenant
    r = world.call("POST", "/apps/installations", a.admin, {**body, "settings": {"threshold": 0}})
    assert r.status_code == 422 and "setting 'threshold'" in r.text
    r = world.call("POST", "/apps/installations", a.admin, {**body, "settings": {"nope": 1}})
    assert r.status_code == 422 and "setting 'nope'" in r.text
    # an engineer of the tenant may not install (tenant admin only)
    _, eng = world.user(a.id, [(Role.ENGINEER, None)])
    assert world.call("POST", "/apps/installations", eng, body).status_code == 403
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 201, r.text
    inst = r.json()
    assert inst["site_ids"] == [a.site_id] and inst["state"] == "installed"
    assert inst["settings"] == {"threshold": 2.5, "window_min": 15}
    assert inst["status"]["state"] == "not running"  # no supervisor in this API
    assert inst["name"] == "Spindle probe"
    logged = [e for e in _audit(world, "apps.install") if e["object"].endswith(inst["id"])]
    assert logged and logged[0]["detail"]["permissions"] == sorted(appworld.PERMS["0.1.0"])
    assert world.call("GET", f"/apps/installations/{inst['id']}/logs", a.admin).json() == []
    ids = [i["id"] for i in world.call("GET", "/apps/installations", a.admin).json()]
    assert inst["id"] in ids
    ids_b = [i["id"] for i in world.call("GET", "/apps/installations", world.b.admin).json()]
    assert inst["id"] not in ids_b


def test_configure_upgrade_rollback_uninstall(world: World) -> None:
    a = world.a
    iid = appworld.install(world, a)["id"]
    path = f"/apps/installations/{iid}"
    r = world.call("PUT", f"{path}/settings", a.admin, {"settings": {"threshold": 4}})
    assert r.status_code == 200 and r.json()["settings"]["threshold"] == 4
    # 0.2.0 asks for one more permission: it must be accepted again
    up = {"version": "0.2.0", "accepted_permissions": appworld.PERMS["0.1.0"]}
    r = world.call("POST", f"{path}/upgrade", a.admin, up)
    assert r.status_code == 422 and "states:read" in r.text
    up["accepted_permissions"] = appworld.PERMS["0.2.0"]
    r = world.call("POST", f"{path}/upgrade", a.admin, up)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["version"], got["previous_version"]) == ("0.2.0", "0.1.0")
    assert got["settings"]["threshold"] == 4 and "states:read" in got["permissions"]
    r = world.call("POST", f"{path}/rollback", a.admin)
    assert r.status_code == 200
    assert r.json()["version"] == "0.1.0"
    assert r.json()["permissions"] == sorted(appworld.PERMS["0.1.0"])
    for action in ("apps.configure", "apps.upgrade", "apps.rollback"):
        assert any(e["object"] == f"installation:{iid}" for e in _audit(world, action)), action

    # the instance's data: a finding with a verdict, and some state
    repo = appworld.repository(world)
    fid = appworld.add_finding(world, a, iid)
    world.run(repo.add_feedback, a.id, a.site_id, fid, "confirmed", "seen", "user:x")
    world.run(repo.set_state, iid, "k", '{"n": 1}', 1024)
    r = world.call("DELETE", path, a.admin)
    assert r.status_code == 204
    # access ends at once: no grant, nothing more to change; data per decision 0902
    with pytest.raises(NotFound, match="uninstalled"):
        world.run(appworld.catalog(world).grant, a.id, iid)
    assert world.call("POST", f"{path}/rollback", a.admin).status_code == 422
    assert world.call("GET", path, a.admin).json()["state"] == "uninstalled"
    assert world.run(repo.get_state, iid, "k") is None
    assert world.call("GET", f"/sites/{a.site_id}/findings/{fid}", a.admin).status_code == 200
    detail = next(e["detail"] for e in _audit(world, "apps.uninstall") if e["object"].endswith(iid))
    assert detail["kept"] == {"findings": 1, "feedback": 1, "work_orders": 0}
    assert detail["state_keys_deleted"] == 1
    listed = world.call("GET", "/apps/installations", a.admin).json()
    assert iid not in [i["id"] for i in listed]
    listed = world.call("GET", "/apps/installations", a.admin, uninstalled=True).json()
    assert iid in [i["id"] for i in listed]


def test_inbox_filters_evidence_and_verdicts_reach_the_app(world: World) -> None:
    a = world.a
    iid = appworld.install(world, a)["id"]
    other = "tc1/machining/L1/MC-02"
    f1 = appworld.add_finding(world, a, iid)
    f2 = appworld.add_finding(
        world, a, iid, machine=other, signals=(f"{other}/vibration",), score=0.4
    )
    base = f"/sites/{a.site_id}/findings"
    got = world.call("GET", base, a.admin, app_id="probe", machine=other).json()["findings"]
    assert [f["id"] for f in got] == [f2]
    _, operator = world.user(a.id, [(Role.OPERATOR, a.site_id)])
    _, viewer = world.user(a.id, [(Role.VIEWER, a.site_id)])
    body = {"verdict": "rejected", "comment": "coolant change, not wear"}
    assert world.call("POST", f"{base}/{f1}/feedback", viewer, body).status_code == 403
    r = world.call("POST", f"{base}/{f1}/feedback", operator, body)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "rejected"
    assert r.json()["feedback"][0]["comment"] == "coolant change, not wear"
    opened = world.call("GET", base, viewer, verdict="open", limit=1000).json()["findings"]
    assert f2 in [f["id"] for f in opened] and f1 not in [f["id"] for f in opened]
    rejected = world.call("GET", base, viewer, verdict="rejected").json()["findings"]
    assert [f["id"] for f in rejected if f["installation_id"] == iid] == [f1]
    # what the SDK's feedback.list returns, through the AppSink
    fb = world.run(appworld.repository(world).feedback_since, iid, 0)
    assert [(x.finding_id, x.verdict, x.comment) for x in fb] == [
        (f1, "rejected", "coolant change, not wear")
    ]
    assert world.run(appworld.repository(world).feedback_since, iid, fb[0].at_us + 1) == []
    # the evidence: the signal over the window, from the store
    r = world.call("GET", f"{base}/{f1}/evidence", viewer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["series"]["signals"] == [appworld.SIGNAL] and ev["unknown"] == []
    assert ev["from_us"] < ev["start_us"] < ev["end_us"] < ev["to_us"]
    assert sum(ev["series"]["count"]) > 100
    assert all(ev["from_us"] <= b < ev["to_us"] for b in ev["series"]["bucket"])
    assert world.call("GET", f"{base}/nope/evidence", viewer).status_code == 404


def test_sink_checks_sites_and_caps_state(world: World) -> None:
    a = world.a
    inst = appworld.install(world, a)
    with pytest.raises(Invalid, match="not one of the installation's sites"):
        appworld.add_finding(world, a, inst["id"], site=world.b.site_id)
    repo = appworld.repository(world)
    world.run(repo.set_state, inst["id"], "a", '"' + "x" * 500 + '"', 1000)
    with pytest.raises(StateLimitExceeded):
        world.run(repo.set_state, inst["id"], "b", '"' + "x" * 500 + '"', 1000)
    world.run(repo.set_state, inst["id"], "a", '"small"', 1000)  # replacing fits
    world.run(repo.set_state, inst["id"], "b", '"' + "x" * 500 + '"', 1000)
    assert world.run(repo.get_state, inst["id"], "a") == '"small"'


def test_proposed_work_orders_are_listed_per_site(world: World) -> None:
    a, b = world.a, world.b
    inst = appworld.install(world, a)
    order = WorkOrder(a.site_id, appworld.MACHINE, "Replace spindle bearing", "RMS +40 %")
    wid = world.run(appworld.repository(world).add_work_order, grant_of(inst), order, world.clock())
    got = world.call("GET", f"/sites/{a.site_id}/workorders", world.a.app).json()
    mine = next(w for w in got if w["id"] == wid)
    assert (mine["machine"], mine["title"], mine["installation_id"]) == (
        appworld.MACHINE,
        "Replace spindle bearing",
        inst["id"],
    )
    theirs = world.call("GET", f"/sites/{b.site_id}/workorders", b.admin).json()
    assert wid not in [w["id"] for w in theirs]
    assert world.call("GET", f"/sites/{a.site_id}/workorders", b.admin).status_code == 404


def test_a_changed_app_directory_is_not_installed(world: World, tmp_path: Path) -> None:
    """What was tested is what runs: the catalog keeps the digest of the app's files."""
    src = tmp_path / "probe"
    shutil.copytree(appworld.APP_DIRS["0.1.0"], src)
    manifest = src / "andon-app.yaml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace("version: 0.1.0", "version: 0.0.1"),
        encoding="utf-8",
    )
    cat = appworld.catalog(world)
    got = world.run(cat.publish, src, appworld.report_of(src), Who("cli"))
    assert len(got["digest"]) == 64
    a = world.a
    body = {
        "app_id": "probe",
        "version": "0.0.1",
        "site_ids": [a.site_id],
        "accepted_permissions": appworld.PERMS["0.1.0"],
    }
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 201, r.text
    (src / "probe_one" / "app.py").write_text("raise SystemExit(0)\n", encoding="utf-8")
    r = world.call("POST", "/apps/installations", a.admin, body)
    assert r.status_code == 422 and "changed since it was tested" in r.text
