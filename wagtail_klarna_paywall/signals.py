"""Signals for site integration (analytics, CRM, e-mail). Each fires once per attempt and outcome.

Every signal is sent with ``sender=PurchaseAttempt`` and ``attempt=<the PurchaseAttempt>``, after the
attempt's new state is committed. The attempt holds no tokens or personal data, so receivers may log it.

- ``purchase_started``: the attempt got its first Payway session (the reader pressed "buy").
- ``purchase_completed``: Payway placed the order (state ``placed``). The subscription exists whether or
  not the reader ever reaches the confirmation page.
- ``purchase_failed``: the attempt ended without an order or with an unknown outcome (states
  ``declined``, ``failed``, ``unknown``); ``error_code`` says why.

Receivers must not raise: the flow sends with ``send_robust`` so a broken receiver cannot turn a
purchase into an error page, and logs what it raised.
"""

from django.dispatch import Signal

purchase_started = Signal()
purchase_completed = Signal()
purchase_failed = Signal()
