"""The fake Payway's switches for what Payway's docs leave open (fake/variants.py, VARIANTS): from settings,
from the sandbox's environment, and flipped at runtime through the control API (as the browser tests do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import FAKE_KP as KP
from tests.factories import FakeApi as Api
from wagtail_klarna_paywall.fake import state
from wagtail_klarna_paywall.fake.variants import Variants

pytestmark = pytest.mark.usefixtures("fresh_fake")

CONTROL = "/fake-payway/_control/"


def control(body):
    return Client().post(CONTROL, json.dumps(body), content_type="application/json")


def test_defaults_are_the_documented_shapes():
    assert state.variants().as_json() == {
        "envelope": "item",
        "redirect_field": "redirect_uri",
        "categories": "standard",
        "order_scope_error": False,
    }
    assert Client().get(CONTROL).json()["variants"] == state.variants().as_json()


def test_control_api_flips_every_switch_until_a_reset():
    api = Api()
    response = control(
        {
            "variants": {
                "envelope": "flat",
                "redirect_field": "redirect_url",
                "categories": "direct_debit",
            }
        }
    )
    assert response.status_code == 200
    assert response.json()["variants"]["envelope"] == "flat"

    created = api.session().json()
    assert "item" not in created
    assert [c["identifier"] for c in created["payment_method_categories"]][-1] == "direct_debit"
    placed = api.place(created["klarna_payments_session_id"]).json()
    assert set(placed) == {"order_id", "redirect_url"}

    trial = api.session(code="demo_trial_14d", period_type=None, period_id=_trial_period()).json()
    assert [c["identifier"] for c in trial["payment_method_categories"]] == ["pay_now", "direct_debit"]

    control({"reset": True})
    assert "item" in api.session().json()


def test_order_scope_error_refuses_orders_before_executing_them():
    api = Api()
    session_id = api.session_id()
    assert control({"variants": {"order_scope_error": True}}).status_code == 200
    response = api.place(session_id)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert state.orders() == []
    # The session and the authorization are untouched: with the switch off, the order goes through.
    control({"variants": {"order_scope_error": False}})
    assert api.place(session_id).status_code == 200


@pytest.mark.parametrize(
    "variants",
    [{"envelope": "wrapped"}, {"no_such_switch": 1}, {"order_scope_error": "maybe"}, ["flat"]],
)
def test_control_api_refuses_unknown_switches_and_values(variants):
    response = control({"variants": variants})
    assert response.status_code == 400
    assert state.variants() == Variants()


def test_settings_choose_the_variants(settings):
    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {
        "ENVELOPE": "flat",
        "REDIRECT_FIELD": "redirect_url",
        "CATEGORIES": "direct_debit",
        "ORDER_SCOPE_ERROR": "1",
    }
    state.reset()
    assert state.variants() == Variants("flat", "redirect_url", "direct_debit", True)


def test_bad_settings_fail_loudly(settings):
    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {"ENVELOPE": "nested"}
    with pytest.raises(ValueError, match="envelope"):
        state.reset()
        state.variants()
    settings.WAGTAIL_KLARNA_PAYWALL_FAKE = {}
    state.reset()


def test_the_sandbox_reads_the_switches_from_the_environment():
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": f"{repo}{os.pathsep}{repo / 'sandbox'}",
        "DJANGO_SETTINGS_MODULE": "sandbox.settings.dev",
        "FAKE_PAYWAY_ENVELOPE": "flat",
        "FAKE_PAYWAY_ORDER_SCOPE_ERROR": "1",
        "FAKE_SSO2_CLAIMS": "pw-sso-aud",
    }
    env.pop("PAYWAY_CLIENT_ID", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.WAGTAIL_KLARNA_PAYWALL_FAKE)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # The response-shape switches and the SSO2 claims switch live side by side in one dict.
    assert out.strip() == str({"ENVELOPE": "flat", "ORDER_SCOPE_ERROR": "1", "SSO2_CLAIMS": "pw-sso-aud"})


def _trial_period():
    from wagtail_klarna_paywall.fake import catalogue

    return catalogue.TRIAL_PERIOD_ID


def test_kp_paths_are_the_fakes():
    assert KP.format(2).endswith("/external/api/v2/klarna_payments/")


def test_the_control_page_flips_the_switches(db):
    page = Client()
    html = page.get("/fake-payway/").content.decode()
    assert 'id="fake-payway-variants"' in html
    response = page.post(
        "/fake-payway/",
        {
            "action": "variants",
            "envelope": "flat",
            "redirect_field": "redirect_url",
            "order_scope_error": "True",
        },
    )
    assert response.status_code == 302
    assert state.variants() == Variants("flat", "redirect_url", "standard", True)
    assert page.post("/fake-payway/", {"action": "variants", "envelope": "nested"}).status_code == 400
