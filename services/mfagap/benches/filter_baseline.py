"""The rule of `mfagap filter` in plain Python, for the filter benchmark to compare against.

Reads JSON Lines of Event Hubs message bodies (the diagnostic envelope {"records": [...]}, a
bare array of records, or one record, as `mfagap generate` writes them) with the standard
`json` module, applies the rule of README.md ("The rule") to every diagnostic record, and
writes one JSON line per emitted sign-in (category, id, reason) to standard output. The
summary goes to standard error as one JSON object: messages, records, emitted, dead letters.

It is a baseline, not a second implementation to run in production: it reads only the
diagnostic shape, and a record is a dead letter here for the same reasons as in mfagap
(no properties, no id, no status, no readable time, a field of the wrong type). Duplicates
(same category and id) are emitted once, as mfagap's window does for inputs shorter than it.

    python3 filter_baseline.py FILE
"""

import json
import re
import sys
from datetime import datetime

USER = {"SignInLogs", "NonInteractiveUserSignInLogs", "ADFSSignInLogs"}
WORKLOAD = {
    "ServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs",
    "MicrosoftServicePrincipalSignInLogs",
}
LEGACY = {
    c.lower()
    for c in (
        "IMAP4",
        "POP3",
        "Authenticated SMTP",
        "Exchange ActiveSync",
        "Exchange Web Services",
        "MAPI Over HTTP",
        "Offline Address Book",
        "Other clients",
        "Outlook Anywhere (RPC over HTTP)",
        "Outlook Service",
        "Autodiscover",
        "Exchange Online PowerShell",
        "Reporting Web Services",
        "Universal Outlook",
        "IMAP",
        "POP",
        "SMTP",
    )
}
CATEGORIES = {c.lower(): c for c in USER | WORKLOAD}

WORD = re.compile(r"[^\W_]+")
ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)
US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}),? (\d{1,2}):(\d{2})(?::(\d{2}))? ?([AaPp][Mm])?$")


class Bad(Exception):
    """A record the rule cannot read: a dead letter."""


def readable_time(text):
    if not isinstance(text, str):
        raise Bad("time is not a string")
    t = text.strip()
    m = ISO.match(t)
    if m:
        y, mo, d, h, mi, s = (int(g or 0) for g in m.groups()[:6])
        datetime(y, mo, d, h, mi, s)
        return
    m = US.match(t)
    if m:
        mo, d, y, h, mi, s = (int(g or 0) for g in m.groups()[:6])
        half = m.group(7)
        if half and not 1 <= h <= 12:
            raise Bad("hour")
        datetime(y, mo, d, h % 24, mi, s)
        return
    raise Bad("unreadable time")


def code(value):
    """An integer code as a number or a string of digits; None when absent."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise Bad("code")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise Bad("code")
    if isinstance(value, str):
        if not value.strip():
            return None
        return int(value.strip())
    raise Bad("code")


def obj(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Bad("not an object")
    return value


def text(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise Bad("not text")
    return value if isinstance(value, str) else json.dumps(value)


def words(t):
    return [w.lower() for w in WORD.findall(t)]


def squashed(t):
    return "".join(c for c in t.lower() if c.isascii() and c.isalnum())[:64]


def mentions_mfa(t):
    return "multifactor" in squashed(t) or "mfa" in words(t)


def done(t):
    if not t or not mentions_mfa(t):
        return False
    ok = False
    for w in words(t):
        if w in ("completed", "satisfied"):
            ok = True
        elif w in ("not", "skipped", "denied", "failed", "declined", "blocked"):
            return False
    return ok


def skipped(t):
    return "skipped" in words(t)


def strong(method):
    m = squashed(method)
    return any(k in m for k in ("fido2", "windowshello", "passkey", "passwordless")) or (
        "certificate" in m and "multifactor" in m
    )


def flag(value):
    if value is True or value == 1:
        return True
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return False


def classify(record):
    """None (not emitted) or the reason of an emitted sign-in; raises Bad for a dead letter."""
    if not isinstance(record, dict):
        raise Bad("not an object")
    category = record.get("category")
    if category is None:
        raise Bad("no category")
    category = CATEGORIES.get(text(category).lower())
    if category not in USER:
        return None
    p = record.get("properties")
    if p is None:
        raise Bad("no properties")
    p = obj(p)
    if not text(p.get("id")).strip():
        raise Bad("no id")
    status = obj(p.get("status"))
    result = code(status.get("errorCode"))
    if result is None:
        result = code(record.get("resultType"))
    if result is None:
        raise Bad("no status")
    created = p.get("createdDateTime")
    readable_time(created if created is not None else record.get("time"))
    if result != 0:
        return None
    steps = [obj(s) for s in p.get("authenticationDetails") or []]
    succeeded = [s for s in steps if flag(s.get("succeeded"))]
    detail = lambda s: text(s.get("authenticationStepResultDetail"))  # noqa: E731
    if any(done(detail(s)) for s in succeeded):
        return None
    if any(
        "multifactor" in squashed(text(s.get("authenticationStepRequirement")))
        and not skipped(detail(s))
        for s in succeeded
    ):
        return None
    if any(strong(text(s.get("authenticationMethod"))) for s in succeeded):
        return None
    if text(p.get("authenticationRequirement")).strip().lower() == "multifactorauthentication":
        if not any(skipped(detail(s)) for s in steps) or any(done(detail(s)) for s in steps):
            return None
    if not steps and text(obj(p.get("mfaDetail")).get("authMethod")).strip():
        return None
    if done(text(status.get("additionalDetails"))):
        return None
    if text(p.get("clientAppUsed")).strip().lower() in LEGACY:
        return "legacy_protocol"
    if any(skipped(detail(s)) for s in steps):
        return "mfa_skipped"
    return "single_factor"


def main(path):
    counts = {"messages": 0, "records": 0, "emitted": 0, "duplicates": 0, "deadLetters": 0}
    seen = set()
    out = sys.stdout
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            counts["messages"] += 1
            try:
                body = json.loads(line)
            except ValueError:
                counts["deadLetters"] += 1
                continue
            if isinstance(body, dict):
                records = body["records"] if "records" in body else [body]
            elif isinstance(body, list):
                records = body
            else:
                records = None
            if not isinstance(records, list):
                counts["deadLetters"] += 1
                continue
            for record in records:
                counts["records"] += 1
                try:
                    reason = classify(record)
                except (Bad, ValueError, TypeError):
                    counts["deadLetters"] += 1
                    continue
                if reason is None:
                    continue
                key = (record["category"], record["properties"]["id"])
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                counts["emitted"] += 1
                out.write(json.dumps({"category": key[0], "id": key[1], "reason": reason}))
                out.write("\n")
    json.dump(counts, sys.stderr)
    sys.stderr.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
