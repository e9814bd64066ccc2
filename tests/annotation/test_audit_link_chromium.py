"""The link ``push --priority audit`` prints opens Argilla's real annotation page with the
flagged items first (headless Chromium, system /usr/bin/chromium).

Argilla 2.8 gives each annotator the pending records in a random order of their own; the
link's ``sort=metadata.audit_flags.desc`` must make the UI itself ask the server for the
records sorted by the number of flags, so the first item an annotator sees is the most
flagged one, and the item shows its flags.
"""

from __future__ import annotations

import json
import uuid

from playwright import sync_api as playwright_api

from annotation.client import connect
from annotation.images import url_builder
from annotation.push import push
from annotation.rubric import load_rubric
from schemas.audit import add_flags, flag
from tests.annotation.test_audit_routing import _record
from tests.conftest import CHROMIUM, CHROMIUM_ARGS


def test_the_printed_link_shows_flagged_items_first(argilla_server, tmp_path):
    client = connect(argilla_server.url, argilla_server.api_key)
    records = [add_flags(_record(f"PBL_ui_{i:02d}"), []) for i in range(20)]
    two = [flag("answer_in_question", "audit_answer_patterns", "The answer is in the question."),
           flag("blind_answerable", "audit_blind", "A text-only model answers it.")]  # fmt: skip
    records[13] = add_flags(records[13], two)
    records[7] = add_flags(records[7], two[:1])
    name = f"aul-{uuid.uuid4().hex[:6]}"
    report = push(client, records, name, load_rubric(), url_builder("http://127.0.0.1:9"),
                  workspace=argilla_server.workspace, priority="audit")  # fmt: skip
    link = report.links["PBL"]
    annotator = argilla_server.create_annotator(f"aul-{uuid.uuid4().hex[:6]}")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{argilla_server.url}/sign-in")
            page.fill("input[name=Username]", annotator["username"])
            page.fill("input[name=Password]", annotator["password"])
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "sign-in" not in url)
            with page.expect_response(
                lambda r: "/records/search" in r.url and r.request.method == "POST"
            ) as searched:
                page.goto(link)
            body = json.loads(searched.value.request.post_data or "{}")
            items = searched.value.json()["items"]
            page.get_by_text("Audit flags that hold").first.wait_for()
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()
    assert body["sort"] == [
        {"scope": {"entity": "metadata", "metadata_property": "audit_flags"}, "order": "desc"}
    ]
    first = [i["record"]["external_id"] for i in items][:2]
    assert first == ["PBL_ui_13", "PBL_ui_07"]
    html = items[0]["record"]["fields"]["item"]["html"]
    assert "<b>flag 2</b> (blind answerable, raised by audit_blind)" in html
