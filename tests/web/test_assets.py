"""The vendor files the UI serves come from the npm lock with their licences, and the ECharts
build we ship draws a chart's title and legend in Debian's Chromium (the brief found that the
smaller ``echarts.simple`` build does not)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from flask import Flask

from tests.support.browser import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "cloud" / "web" / "assets"
VENDOR = ROOT / "cloud" / "web" / "static" / "vendor"


def test_every_vendor_file_is_copied_with_its_licence() -> None:
    spec = importlib.util.spec_from_file_location("vendor", ASSETS / "vendor.py")
    assert spec
    assert spec.loader
    vendor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor)
    locked = json.loads((ASSETS / "package-lock.json").read_text())["packages"]
    wanted = json.loads((ASSETS / "package.json").read_text())
    for name, version in {**wanted["dependencies"], **wanted["devDependencies"]}.items():
        assert locked[f"node_modules/{name}"]["version"] == version, name
    for folder, sources in vendor.FILES.items():
        names = {vendor._target_name(s) for s in sources}
        assert any(n.startswith("LICENSE") or n.endswith("LICENSE.md") for n in names), folder
        for name in names:
            assert (VENDOR / folder / name).is_file(), f"{folder}/{name}: run make setup"
    assert (VENDOR / "echarts" / "NOTICE").is_file()


_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>chart</title>
<script src="/static/vendor/echarts/echarts.common.min.js"></script></head>
<body><div id="c" style="width:600px;height:300px"></div>
<script src="/chart.js"></script></body></html>"""
_CHART_JS = """
const chart = echarts.init(document.getElementById('c'), null, {renderer: 'svg'});
chart.setOption({title: {text: '售电日报'}, legend: {data: ['售电', '退电']},
  xAxis: {type: 'category', data: ['1日', '2日']}, yAxis: {type: 'value'},
  series: [{name: '售电', type: 'bar', stack: 's', data: [5, 7]},
           {name: '退电', type: 'bar', stack: 's', data: [1, 2]}]});
"""


def test_echarts_common_build_renders_title_and_legend(page: Any) -> None:
    app = Flask(__name__, static_folder=str(VENDOR.parent), static_url_path="/static")
    app.add_url_rule("/", "page", lambda: _PAGE)
    app.add_url_rule(
        "/chart.js", "js", lambda: (_CHART_JS, 200, {"Content-Type": "text/javascript"})
    )
    with LiveServer(app) as server:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        svg = page.locator("#c svg")
        svg.wait_for()
        text = [t.text_content() for t in page.locator("#c svg text").all()]
        assert "售电日报" in text
        assert "售电" in text
        assert "退电" in text
        assert errors == []
