"""SSO2's wire protocol as the plugin speaks it: the audience and algorithm of the tokens, the session
statuses, which claims of an answer matter, and the ``aud``/``iss`` shapes an answer may come in.

Apart from :mod:`.sso` (the login flow, which reads the database and the reader's session) because the
fake SSO2 speaks the same protocol from a process that has neither.
"""

from __future__ import annotations

AUDIENCE = "pw-sso"
ALGORITHM = "HS256"
#: Clock skew tolerated on SSO2's answers (Adeprimo's own integration allows 120 s).
LEEWAY = 120
IDENTIFY_LIFETIME = 60
CALL_LIFETIME = 10
#: The issuer SSO2 names when an answer is addressed to our client id (one of the shapes below).
RESPONSE_ISSUER = "pw-sso"

STATUS_ANON = "anon"
STATUS_LOGGEDIN = "loggedin"
STATUS_TERMINATED = "terminated"
ERR_SESSION_NOT_FOUND = "session_not_found"

#: Which claims of an SSO2 answer matter: the one place this is decided (docs/payway-contract.md, section
#: "SSO2 answers"). An answer is trusted on its HS256 signature with our client secret, its time claims
#: (``exp`` required; ``nbf``/``iat`` checked when present; all with :data:`LEEWAY`) and a readable
#: ``sid``/``sts``. Payway documents ``aud``/``iss`` only for the tokens a site sends, so an answer's
#: ``aud``/``iss`` may be absent or in either orientation and never decide anything: the shape seen is
#: logged once per process so a site can confirm what its SSO2 sends. No other claim is ever a reason to
#: refuse. A token we signed ourselves (identify, sessionstatus, logout) never carries ``sts``, so requiring
#: ``sts`` keeps one of ours, such as the Identify token visible in the browser, from passing as an answer.
ANSWER_REQUIRED_CLAIMS = ("exp", "sid", "sts")
ANSWER_STATUSES = (STATUS_ANON, STATUS_LOGGEDIN, STATUS_TERMINATED)
#: Names of the ``aud``/``iss`` shapes, as logged (and as the fake's ``SSO2_CLAIMS`` switch names them).
SHAPE_CLIENT_AUD = "client-aud"  # aud = our client id, iss = "pw-sso"
SHAPE_PW_SSO_AUD = "pw-sso-aud"  # aud = "pw-sso", iss = our organisation id
SHAPE_NONE = "none"  # neither claim
SHAPE_OTHER = "other"  # anything else (accepted too; logged as a warning)
ANSWER_SHAPES = (SHAPE_CLIENT_AUD, SHAPE_PW_SSO_AUD, SHAPE_NONE)
