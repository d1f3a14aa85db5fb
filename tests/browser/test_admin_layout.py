"""The plugin's admin furniture in a real Chromium: nothing it adds covers Wagtail's own controls.

Layout bugs are invisible to the test client: these tests read bounding boxes, in Swedish, at a desktop
and a phone width, on the sandbox (which runs against the fake Payway, so the test-mode strip is shown).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ADMIN = ("admin", "admin")


def _log_in(page: Page) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", ADMIN[0])
    page.fill("#id_password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")


def _overlaps(a: dict | None, b: dict | None) -> bool:
    if not a or not b:
        return False
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def _visible_boxes(page: Page, selector: str) -> list[dict]:
    boxes = []
    for handle in page.locator(selector).element_handles():
        box = handle.bounding_box()
        if box and box["width"] > 0 and box["height"] > 0 and handle.is_visible():
            boxes.append(box)
    return boxes


@pytest.fixture
def swedish_admin(browser, sandbox, request):
    width = getattr(request, "param", 1280)
    ctx = browser.new_context(
        base_url=sandbox.base_url, locale="sv-SE", viewport={"width": width, "height": 900}
    )
    page = ctx.new_page()
    _log_in(page)
    yield page
    ctx.close()


def _open_article_editor(page: Page) -> None:
    page.goto("/admin/pages/search/?q=cykelbana")
    page.goto(page.locator("a[href*='/admin/pages/'][href$='/edit/']").first.get_attribute("href"))
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("swedish_admin", [1280, 390], indirect=True)
@pytest.mark.parametrize(
    "path", ["article editor", "/admin/klarna-paywall/purchases/", "/admin/klarna-paywall/funnel/"]
)
def test_test_mode_strip_covers_no_admin_control(swedish_admin: Page, path: str):
    page = swedish_admin
    if path == "article editor":
        _open_article_editor(page)
    else:
        page.goto(path)
        page.wait_for_load_state("networkidle")
    strip = page.locator(".wkp-test-mode-ribbon")
    assert strip.count() == 1 and strip.is_visible(), "the test-mode strip is shown"
    strip_box = strip.bounding_box()
    controls = _visible_boxes(
        page, "#main header button, #main header a, #main header input, #main header select"
    )
    assert controls, "the page has header controls to compare with"
    covered = [box for box in controls if _overlaps(strip_box, box)]
    assert covered == [], f"the test-mode strip {strip_box} covers {covered}"


def test_chooser_refresh_button_holds_its_label(swedish_admin: Page):
    page = swedish_admin
    _open_article_editor(page)
    page.locator(".wkp-offer-block .chooser__choose-button").first.dispatch_event("click")
    button = page.locator(".wkp-chooser-refresh button")
    button.wait_for()
    assert button.inner_text().strip() == "Hämta på nytt från Payway"
    box = button.bounding_box()
    assert box["height"] < 60 and box["width"] < 400, f"a compact button, not {box}"
    # Nothing inside the button is drawn outside it (an unsized icon spilled out at 300 x 150).
    for child in _visible_boxes(page, ".wkp-chooser-refresh button *"):
        assert child["x"] >= box["x"] - 1 and child["y"] >= box["y"] - 1
        assert child["x"] + child["width"] <= box["x"] + box["width"] + 1
        assert child["y"] + child["height"] <= box["y"] + box["height"] + 1
    search = page.locator("[data-chooser-modal-search] input").first.bounding_box()
    assert not _overlaps(box, search)


def test_funnel_date_filter_works_and_a_reversed_range_is_an_error(swedish_admin: Page):
    page = swedish_admin
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/admin/klarna-paywall/funnel/")
    page.wait_for_load_state("networkidle")
    assert errors == [], "the date pickers' script is loaded (no initDateChooser error)"

    # Dates alone make a range: the period menu need not be switched by hand.
    page.fill("#id_start", "2026-11-01")
    page.fill("#id_end", "2026-11-15")
    page.get_by_role("button", name="Visa").click()
    page.wait_for_load_state("networkidle")
    assert "2026-11-01 00:00" in page.content() and "2026-11-15" in page.content()

    page.fill("#id_start", "2026-11-15")
    page.fill("#id_end", "2026-11-01")
    page.get_by_role("button", name="Visa").click()
    page.wait_for_load_state("networkidle")
    assert page.locator(".wkp-period-form .errorlist").count() >= 1, "the editor sees the error"
    assert errors == []
