"""Drive `trace-bench ui` in a real Chromium (Playwright, the system's chromium).

    check_ui.py URL SHOTS_DIR

The app serves a runs dir holding two finished runs of one config (`done`, `again`) and a
configs dir with `quick.yaml` (two stub jobs), `slow.yaml` (six slow jobs, one at a time)
and `bad.yaml` (a wrong type on line 5). Every step waits for what the page shows; any
failure, page error or console error exits non-zero. Screenshots go to SHOTS_DIR.
"""

import re
import shutil
import sys
import time

from playwright.sync_api import expect, sync_playwright

URL, SHOTS = sys.argv[1], sys.argv[2]
T = 60_000  # ms: the longest wait of any step
problems = []


def step(name):
    print(f"check_ui: {name}", flush=True)


def main():
    chromium = shutil.which("chromium")
    if not chromium:
        sys.exit("check_ui: FAIL: no chromium on PATH")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(T)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text} ({m.location.get('url', '')})")
            if m.type == "error"
            else None,
        )

        step("the runs list")
        page.goto(URL)
        expect(page.get_by_role("link", name="done", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="again", exact=True)).to_be_visible()
        page.screenshot(path=f"{SHOTS}/runs.png")

        step("a run: leaderboard, curves, jobs filtered by status")
        page.get_by_role("link", name="done", exact=True).click()
        expect(page.locator("h2")).to_have_text("Run done")
        expect(page.locator("#run-head")).to_contain_text("complete")
        expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
        page.wait_for_function(
            "() => { const i = document.getElementById('curves'); return i && i.complete && i.naturalWidth > 100; }"
        )
        page.select_option("#f-status", "ok")
        expect(page.locator("#jobs .pager")).to_contain_text("(")
        statuses = page.locator("#jobs td span.s-ok")
        expect(statuses.first).to_be_visible()
        n_ok = statuses.count()
        total = int(re.search(r"\((\d+)\)", page.locator("#jobs .pager").inner_text()).group(1))
        if n_ok != min(total, 50) or page.locator("#jobs td span.s-failed").count():
            problems.append(f"status filter: {n_ok} ok rows shown of {total}")
        page.select_option("#curve-axis", "metric_calls")
        page.wait_for_function(
            "() => { const i = document.getElementById('curves'); return i.src.includes('axis=metric_calls') && i.complete && i.naturalWidth > 100; }"
        )
        if "null" in page.locator("#app").inner_text().split():
            problems.append("the run page shows a stray `null`")
        page.screenshot(path=f"{SHOTS}/run.png", full_page=True)
        page.evaluate("window.scrollTo(0, document.getElementById('curves').offsetTop - 420)")
        page.screenshot(path=f"{SHOTS}/docs-run.png")

        step("a job and its transcript")
        page.locator("#jobs a").first.click()
        expect(page.get_by_role("button", name="Transcripts")).to_be_visible()
        page.get_by_role("button", name="Transcripts").click()
        first = page.locator("details > summary").first
        expect(first).to_contain_text("step")
        first.click()
        expect(page.locator(".msg .role").first).to_be_visible()
        page.get_by_placeholder("search").fill("zzzz-never-said")
        expect(page.locator(".pager").first).to_contain_text("(0)")
        page.get_by_placeholder("search").fill("")
        expect(page.locator("details > summary").first).to_be_visible()
        page.get_by_role("button", name="Diff").click()
        expect(page.locator("#param-diff")).to_be_visible()
        page.get_by_role("button", name="Transcripts").click()
        page.locator("details > summary").first.click()
        page.screenshot(path=f"{SHOTS}/job.png", full_page=True)

        step("launch: a bad config shows its located error")
        page.goto(URL + "#/launch")
        page.select_option("#cfg-pick", "bad.yaml")
        expect(page.locator("#cfg-text")).to_have_value(re.compile("max_workers: two"))
        page.click("#validate")
        expect(page.locator("#launch-out")).to_contain_text("not valid")
        expect(page.locator("#launch-out")).to_contain_text("bad.yaml:5:14")

        step("launch a stub run and watch it finish live")
        page.select_option("#cfg-pick", "quick.yaml")
        expect(page.locator("#cfg-text")).to_have_value(re.compile("numeric_param"))
        page.click("#validate")
        expect(page.locator("#launch-out")).to_contain_text("valid: 2 job(s)")
        page.fill("#run-id", "quick")
        page.click("#run")
        page.locator("#launch-out").get_by_role("link", name="quick").click()
        expect(page.locator("h2")).to_have_text("Run quick", timeout=T)
        expect(page.locator("#run-head")).to_contain_text("2 ok", timeout=T)
        expect(page.locator("#run-head")).to_contain_text("complete", timeout=T)
        expect(page.locator("#live")).to_contain_text("live")

        step("launch a slow run, watch its jobs finish, stop it mid-way")
        page.goto(URL + "#/launch")
        page.select_option("#cfg-pick", "slow.yaml")
        expect(page.locator("#cfg-text")).to_have_value(re.compile("demo:slow"))
        page.fill("#run-id", "slow")
        page.click("#run")
        page.locator("#launch-out").get_by_role("link", name="slow").click()
        expect(page.locator("#run-head")).to_contain_text(re.compile(r"\b[1-3] ok"), timeout=T)
        page.screenshot(path=f"{SHOTS}/live.png")
        page.goto(URL + "#/launch")
        page.locator('button[data-action="stop"][data-run="slow"]').click()
        expect(page.locator('[data-state="slow"]')).to_have_text("exited 130", timeout=T)
        page.select_option("#cfg-pick", "slow.yaml")
        expect(page.locator("#cfg-text")).to_have_value(re.compile("demo:slow"))
        page.screenshot(path=f"{SHOTS}/docs-launch.png", clip={"x": 0, "y": 0, "width": 1280, "height": 720})
        page.goto(URL + "#/run/slow")
        expect(page.locator("#run-head")).to_contain_text("cancelled")
        cancelled = int(re.search(r"(\d+) cancelled", page.locator("#run-head").inner_text()).group(1))
        page.select_option("#f-status", "cancelled")
        expect(page.locator("#jobs .pager")).to_contain_text(f"({cancelled})")
        expect(page.locator("#jobs td span.s-ok")).to_have_count(0)
        expect(page.locator("#jobs td span.s-cancelled")).to_have_count(cancelled)
        page.screenshot(path=f"{SHOTS}/stopped.png", full_page=True)

        step("resume it to completion")
        page.goto(URL + "#/launch")
        page.locator('button[data-action="resume"][data-run="slow"]').click()
        expect(page.locator('[data-state="slow"]')).to_have_text("exited 0", timeout=T)
        page.goto(URL + "#/run/slow")
        expect(page.locator("#run-head")).to_contain_text("6 ok")
        expect(page.locator("#run-head")).to_contain_text("complete")
        if "cancelled" in page.locator("#run-head").inner_text():
            problems.append("cancelled jobs left after the resume")

        step("compare two runs picked from the list")
        page.goto(URL)
        page.locator('input[data-run="done"]').check()
        page.locator('input[data-run="again"]').check()
        page.click("#compare-picked")
        expect(page.locator("#verdict")).to_have_text("PASS")
        expect(page.locator("#compare-out table").first).to_contain_text("PrioritySearch")
        page.screenshot(path=f"{SHOTS}/compare.png", full_page=True)

        browser.close()
    if problems:
        for p_ in problems:
            print(f"check_ui: FAIL: {p_}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"check_ui: browser steps passed in {time.time() - t0:.1f} s")
