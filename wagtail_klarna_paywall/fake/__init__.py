"""An embedded fake of Payway's API and Klarna's widget, served over real HTTP by the site itself.

Used by the sandbox (no Payway credentials, no internet) and by the tests, so the real
:class:`~wagtail_klarna_paywall.payway.client.PaywayClient` is exercised end to end. See ``views.py`` for
the API, ``state.py`` for the Python controls tests use, and ``control.py`` for the control API and page.
"""
