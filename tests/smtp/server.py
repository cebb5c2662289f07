"""A real SMTP server for the mail tests (aiosmtpd, from PyPI).

Usage: python3 server.py PORT OUTDIR [plain|starttls|tls CERT KEY]
Listens on 127.0.0.1:PORT, requires AUTH (LOGIN/PLAIN, user "wa", password "secret"), and
writes each accepted message to OUTDIR as JSON with its envelope, whether it came over TLS, and
its decoded headers and body. Prints "ready" once it accepts connections.
Modes: plain (AUTH allowed without TLS, on loopback), starttls (STARTTLS required before
anything else), tls (TLS from the first byte).
"""

import email
import email.policy
import json
import os
import signal
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PORT = int(sys.argv[1])
OUT = sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "plain"
CONTEXT = None
if MODE != "plain":
    CONTEXT = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    CONTEXT.load_cert_chain(sys.argv[4], sys.argv[5])


class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "from": str(message["from"]),
            "to": str(message["to"]),
            "subject": str(message["subject"]),
            "content_type": message.get_content_type(),
            "body": message.get_content(),
        }
        name = os.path.join(OUT, f"{time.time_ns()}.json")
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(name + ".tmp", name)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    with open(os.path.join(OUT, "auth.log"), "a", encoding="utf-8") as f:
        f.write(f"{mechanism}\n")
    if (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"wa"
        and auth_data.password == b"secret"
    ):
        return AuthResult(success=True, auth_data=auth_data.login)
    return AuthResult(success=False, handled=False)


options = dict(authenticator=authenticator, auth_required=True)
if MODE == "plain":
    options.update(auth_require_tls=False)
elif MODE == "starttls":
    options.update(tls_context=CONTEXT, require_starttls=True)
else:
    # aiosmtpd only counts STARTTLS as TLS for AUTH; here the whole connection is TLS.
    options.update(ssl_context=CONTEXT, auth_require_tls=False)
controller = Controller(Handler(), hostname="127.0.0.1", port=PORT, **options)
controller.start()
print("ready", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (controller.stop(), sys.exit(0)))
while True:
    signal.pause()
