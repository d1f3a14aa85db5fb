"""An embedded fake of Payway's API and Klarna's widget, served over real HTTP by the site itself.

Used by the sandbox (no Payway credentials, no internet) and by the tests, so the real
:class:`~wagtail_klarna_paywall.payway.client.PaywayClient` is exercised end to end. A Django app of its own
(label ``wagtail_klarna_paywall_fake``), with its own templates and static files. See ``views.py`` and
``klarna_payments.py`` for the API, ``klarna.py`` for Klarna's side of the browser (the fake widget is
``static/wagtail_klarna_paywall_fake/fake-klarna.js``), ``state.py`` for the Python controls tests use,
``variants.py`` for the answer shapes where Payway's docs are silent, and ``control.py`` for the control
API and page.
"""
