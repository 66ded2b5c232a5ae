#!/usr/bin/env python3
"""A real SMTP server for jobq's integration tests (aiosmtpd), on 127.0.0.1.

Saves every accepted message as <dir>/msg-<n>.eml (written to a temp name, then renamed) and
appends one line per RCPT and DATA answer to <dir>/answers.log. It can be told to answer RCPT or
DATA with a given code, for the first N transactions or for all of them, and to require AUTH
with a given user and password. Writes --ready-file once it accepts connections, then serves
until it is killed.

    smtp_server.py --port 2525 --dir /tmp/mail --ready-file /tmp/ready \
        [--rcpt-code 451] [--data-code 554] [--fail-times N] [--user u --password p]
"""

import argparse
import os
import sys
import threading

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:
    sys.stderr.write(
        "aiosmtpd is not installed: run scripts/test, or python3 -m pip install aiosmtpd\n"
    )
    sys.exit(3)

MESSAGES = {
    4: "4.3.0 Temporarily unable to accept, try again later",
    5: "5.7.1 Rejected by policy",
}


class Handler:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.failures_left = args.fail_times
        self.saved = 0

    def log(self, line):
        with open(os.path.join(self.args.dir, "answers.log"), "a") as f:
            f.write(line + "\n")

    def _fail(self, code):
        """The failure answer for this command, or None to accept."""
        if code is None:
            return None
        with self.lock:
            if self.failures_left == 0:
                return None
            if self.failures_left > 0:
                self.failures_left -= 1
        return "%d %s" % (code, MESSAGES[code // 100])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self._fail(self.args.rcpt_code)
        if answer is None:
            envelope.rcpt_tos.append(address)
            answer = "250 OK"
        self.log("RCPT %s %s" % (address, answer))
        return answer

    async def handle_DATA(self, server, session, envelope):
        answer = self._fail(self.args.data_code)
        if answer is None:
            with self.lock:
                self.saved += 1
                n = self.saved
            path = os.path.join(self.args.dir, "msg-%d.eml" % n)
            tmp = os.path.join(self.args.dir, ".msg-%d.tmp" % n)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.replace(tmp, path)
            answer = "250 2.0.0 Message accepted as msg-%d" % n
        self.log("DATA %s" % answer)
        return answer


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = getattr(auth_data, "login", None) == self.user and \
            getattr(auth_data, "password", None) == self.password
        return AuthResult(success=ok)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--rcpt-code", type=int, choices=[421, 450, 451, 452, 550, 551, 552, 553])
    p.add_argument("--data-code", type=int, choices=[421, 451, 452, 552, 554])
    p.add_argument("--fail-times", type=int, default=-1,
                   help="how many answers fail; -1 (the default) fails them all")
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    kwargs = {}
    if args.user is not None:
        kwargs = dict(
            authenticator=Authenticator(args.user, args.password or ""),
            auth_required=True,
            auth_require_tls=False,
        )
    controller = Controller(Handler(args), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(args.port))
    os.replace(tmp, args.ready_file)
    threading.Event().wait()


if __name__ == "__main__":
    main()
