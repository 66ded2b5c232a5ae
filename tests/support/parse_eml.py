#!/usr/bin/env python3
"""Parses an RFC 5322 message file with Python's email package and prints what jobq's tests
check, as JSON: decoded headers and the decoded text/plain and text/html bodies."""

import email
import email.policy
import json
import sys

with open(sys.argv[1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)

plain = msg.get_body(preferencelist=("plain",))
html = msg.get_body(preferencelist=("html",))
print(json.dumps({
    "from": str(msg["From"] or ""),
    "to": [str(a.addr_spec) for a in msg["To"].addresses] if msg["To"] else [],
    "reply_to": str(msg["Reply-To"] or ""),
    "subject": str(msg["Subject"] or ""),
    "message_id": str(msg["Message-ID"] or ""),
    "date": str(msg["Date"] or ""),
    "content_type": msg.get_content_type(),
    "plain": plain.get_content() if plain is not None else None,
    "html": html.get_content() if html is not None else None,
    "defects": [type(d).__name__ for d in msg.defects],
}))
