"""bench.html from a bench.json's contents: the per-mode figures, the strip plot, flaky verdicts, links to each
run's report (relative, never out of the bench folder), everything from run data escaped; and
``python -m lab.bench --report DIR`` writing it again without running a drill."""

import base64
import json
import re

import pytest

from lab import bench
from lab.bench_html import bench_html, run_link

EVIL = '<script>alert(1)</script>"'


def run(mode, number, stall, md5=True, folder=None, **extra):
    return {"arbitrator": mode, "run": number, "stall_s": stall, "stall_source": "probe",
            "acknowledged_writes_lost": None, "verdicts": {"md5_from_disk": "held" if md5 else "not held"},
            "unexpected": [], "failed_steps": [], "run_folder": folder or f"runs/2026-{mode}-{number}",
            "started_at": "2026-12-08T00:00:00+00:00", "seconds": 600.0, **extra}


def data(*runs):
    return {"measured_at": "2026-12-08T00:00:00+00:00", "machine": {"cpu": "test cpu"},
            "command": "python -m lab.bench --failover 3", "runs": list(runs)}


def test_the_page_holds_the_figures_the_plot_and_every_report_link():
    page = bench_html(data(run("paper", 1, 4.0), run("paper", 2, 6.0, md5=False), run("paper", 3, 5.0),
                           run("cluster", 1, 27.6)))
    row = re.search(r'<tr data-mode="paper">.*?</tr>', page).group(0)
    assert [float(v) for v in re.findall(r'<td class="num">([\d.]+)</td>', row)][1:5] == [4.0, 5.0, 6.0, 6.0]
    assert "data lost in 1 of 3 runs" in row and "data lost in 0 of 1 runs" in page
    assert "nearest rank" in page and "md5_from_disk or final_md5" in page
    png = re.search(r'<img id="strip"[^>]* src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert page.count('href="./runs/') == 4 and 'href="./runs/2026-paper-2/report.html"' in page
    assert re.search(r"<table id=\"flaky\">.*md5_from_disk.*1, 3.*2", page, re.S)
    runs = re.search(r'<table id="runs">.*?</table>', page, re.S).group(0)
    assert runs.count('<span class="bad">lost</span>') == 1 and runs.count("intact") == 3


def test_no_flaky_verdict_says_so():
    page = bench_html(data(run("paper", 1, 4.0), run("paper", 2, 5.0)))
    assert 'id="flaky" class="ok"' in page


def test_hostile_run_data_is_escaped_and_never_linked_out_of_the_folder():
    runs = [run(EVIL, 1, 3.0, folder="runs/" + EVIL, error=EVIL, unexpected=[EVIL]),
            run("paper", 1, 3.0, folder="../../etc"), run("paper", 2, 3.0, folder="/etc/passwd"),
            run("paper", 3, 3.0, folder="javascript:alert(1)"), {**run("paper", 4, 2.0), "verdicts": {EVIL: "held"}}]
    page = bench_html({**data(*runs), "command": EVIL, "machine": {EVIL: EVIL}})
    assert "<script>" not in page
    assert 'href="../' not in page and 'href="/etc' not in page and 'href="javascript' not in page
    assert 'href="./javascript%3Aalert%281%29/report.html"' in page
    assert "not below the bench folder" in page


def test_a_missing_run_folder_or_a_damaged_bench_still_renders():
    assert "no run folder" in run_link({"run_folder": None})
    page = bench_html({"runs": "not a list", "machine": "x"})
    assert "no stall was measured" in page


def test_report_writes_bench_html_again_from_bench_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench", lambda *args: pytest.fail("the figures ran"))
    (tmp_path / "bench.json").write_text(json.dumps(data(run("paper", 1, 4.0), run("cluster", 1, 27.6))))
    assert bench.main(["--report", str(tmp_path)]) == 0
    assert 'data-mode="cluster"' in (tmp_path / "bench.html").read_text()
    out = capsys.readouterr().out
    assert "kill-ctrl-a failover drills" in out and "27.6" in out


@pytest.mark.parametrize("contents", [None, "{", "[]", '{"runs": 3}', '{"runs": [], "x": NaN}'])
def test_report_refuses_a_missing_or_damaged_bench_json_in_one_line(tmp_path, capsys, contents):
    if contents is not None:
        (tmp_path / "bench.json").write_text(contents)
    assert bench.main(["--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bench.json" in err
    assert not (tmp_path / "bench.html").exists()
