"""Take the README's screenshots from a running sandbox, in Swedish, with Playwright and Chromium.

    sandbox/run                                   # in one terminal: the demo at http://localhost:8000
    .venv/bin/python docs/images/take_screenshots.py [--base-url http://localhost:8000]

It buys Digital as a new reader (in the fake Klarna widget: nothing leaves the machine), then opens the
admin as the demo editor. Each picture is 1280 px wide and saved as a palette PNG next to this file.
Not run in CI: the pictures are looked at by a person before they are committed.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
ARTICLE = "/nyheter/ny-cykelbana-langs-an/"
WIDTH = 1280
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
#: An ordinary Chrome: the view counter ignores "HeadlessChrome" as a bot, and the funnel would start at 0.
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)


def save(png: bytes, name: str) -> None:
    """Keep the picture small: 256 colours are plenty for a web page."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = HERE / f"{name}.png"
    image.save(path, optimize=True)
    size = path.stat().st_size // 1024
    print(f"{path.relative_to(HERE.parents[1])}: {image.width}x{image.height}, {size} KiB")


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.wait_for_load_state("networkidle")
    save(page.screenshot(full_page=full_page, animations="disabled"), name)


def reader_pictures(browser, base_url: str) -> None:
    ctx = browser.new_context(
        base_url=base_url, locale="sv-SE", user_agent=CHROME_UA, viewport={"width": WIDTH, "height": 860}
    )
    page = ctx.new_page()
    page.goto(ARTICLE)
    paywall = page.locator("[data-wkp-paywall]")
    paywall.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -120)")
    shot(page, "paywall")

    # One click from the paywall to the widget.
    paywall.locator("li").filter(has_text="139 kr/mån").get_by_role("button", name="Köp").click()
    page.wait_for_url("**/kop/checkout/**")
    page.locator("[data-fake-klarna=widget]").wait_for()
    page.get_by_label("E-postadress").fill(f"ny.lasare.{secrets.token_hex(3)}@example.com")
    page.get_by_label("Förnamn").fill("Nina")
    page.get_by_label("Efternamn").fill("Läsare")
    shot(page, "checkout", full_page=True)

    page.locator("input[data-fake-klarna-outcome='ok']").check()
    page.locator("[data-wkp-pay]").click()
    page.wait_for_url("**/tack/?**")
    shot(page, "confirmation", full_page=True)
    ctx.close()


def editor_pictures(browser, base_url: str) -> None:
    ctx = browser.new_context(base_url=base_url, locale="sv-SE", viewport={"width": WIDTH, "height": 860})
    page = ctx.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto("/admin/pages/search/?q=cykelbana")
    page.goto(page.locator("a[href*='/admin/pages/'][href$='/edit/']").first.get_attribute("href"))
    page.wait_for_load_state("networkidle")
    offer = page.locator(".wkp-offer-block").nth(1)
    # The offer's chooser and summary near the top, its label and selling points below.
    offer.locator(".chooser").first.evaluate("(el) => el.scrollIntoView({block: 'start'})")
    page.mouse.wheel(0, -120)
    page.wait_for_timeout(300)
    shot(page, "admin-offer-block")

    offer.locator(".chooser__choose-button").first.dispatch_event("click")
    page.locator(".modal-dialog [data-chooser-modal-choice]").first.wait_for()
    shot(page, "admin-chooser")
    page.keyboard.press("Escape")

    page.goto("/admin/klarna-paywall/purchases/")
    shot(page, "admin-purchase-log")
    page.goto("/admin/klarna-paywall/funnel/")
    shot(page, "admin-funnel")
    ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://localhost:8000")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            reader_pictures(browser, args.base_url)
            editor_pictures(browser, args.base_url)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
