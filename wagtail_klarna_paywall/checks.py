"""Django system checks for the WAGTAIL_KLARNA_PAYWALL settings (ids wagtail_klarna_paywall.E0xx/W0xx)."""
