#!/usr/bin/env python3
"""mailcheck.py: reads the catch-all Maildir of the Postfix end-to-end runs.

Used by scripts/e2e-postfix.sh and scripts/faults.sh (see scripts/e2e/lib.sh).
Mail is decoded with Python's email package, not with zipgate's own code,
so a bug in zipgate's MIME handling cannot hide itself.

Every delivered file is classified by its X-Zipgate trace header:
  encrypted  a message zipgate rewrote (X-Zipgate: encrypted; id=ID)
  password   a password mail          (X-Zipgate: password; id=ID)
  notice     a notice to the sender   (X-Zipgate: notice; id=ID)
  bounce     a Postfix bounce (multipart/report)
  plain      anything else (a message that passed untouched)
The envelope recipient is in X-Original-To (written by virtual(8)).

The ledger is what the scripts sent: one line per message that Postfix
accepted, "message-id TAB rcpt,rcpt TAB has-attachments(0/1) TAB queue-id".

Subcommands (exit 0 = fine, 1 = a check failed, 2 = not complete yet):
  list SINK [--kind K] [--id ID] [--mid MID] [--rcpt R] [--files]
      matching mails, oldest first, one line each: kind, id, recipient,
      arrival (mtime), Message-ID, In-Reply-To, file, subject (tab
      separated; "-" for none), or only the files; --kind message is plain
      or encrypted (a copy of a sent message, not mail zipgate wrote); --mid
      matches Message-ID or In-Reply-To
  has-text FILE TEXT  a text part of the mail, decoded, contains TEXT
  text FILE           the text parts of the mail, decoded
  password FILE       the password in a password mail
  press URL ACTION    load a zipgate page and post its form to URL/ACTION,
                      as a browser would; prints the answer's status
  extract-zip FILE DIR
      writes the one attachment of a rewritten message into DIR, prints its
      path; fails unless there is exactly one attachment and it is a zip
  untouched SENT DELIVERED
      DELIVERED is SENT byte for byte below the trace fields Postfix adds
  tally SINK LEDGER --label L [--canceled ID]... [--duplicates-ok] [--orphans-ok]
        [--window-qids FILE]
      one summary line for the mail in LEDGER; 2 while something is still
      on its way, 1 on a violation. --window-qids names a file of Postfix
      queue ids whose delivery to zipgate was cut after the end of the
      data ("message may be sent more than once"): a duplicate of those is
      the one window (counted as in_window), any other is a violation
"""

import argparse
import email
import email.header
import email.policy
import io
import json
import os
import re
import sys
import zipfile
from collections import Counter, defaultdict

POLICY = email.policy.compat32  # keeps raw header text, never rewrites it


def parse(path):
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=POLICY)


def header(msg, name):
    v = msg.get(name)
    return "" if v is None else re.sub(r"\s+", " ", str(v)).strip()


def decoded(value):
    """A header value as text: RFC 2047 words decoded, raw 8-bit as UTF-8."""
    if value is None:
        return ""
    out = []
    for chunk, charset in email.header.decode_header(value):
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset if charset and charset != "unknown-8bit" else "utf-8", "replace"))
        except LookupError:
            out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)


def trace(msg):
    """(kind, id) from X-Zipgate, or ("", "")."""
    m = re.match(r"\s*(\w+)\s*;\s*id=(\S+)", header(msg, "X-Zipgate"))
    return (m.group(1), m.group(2)) if m else ("", "")


def leaf_parts(msg):
    for part in msg.walk():
        if not part.is_multipart():
            yield part


def is_attachment(part):
    """What a sender would call an attachment: named, or not text."""
    disp = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disp == "attachment" or part.get_param("filename", header="content-disposition") \
            or part.get_param("name"):
        return True
    return part.get_content_maintype() not in ("text", "multipart")


def zip_state(data):
    """'encrypted' when every entry of the zip is encrypted, else a reason."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except zipfile.BadZipFile as e:
        return "not a zip (%s)" % e
    if not infos:
        return "empty zip"
    clear = [i.filename for i in infos if not i.flag_bits & 0x1]
    return "encrypted" if not clear else "entries not encrypted: %s" % clear


def describe(path):
    """The facts about one delivered file the checks need."""
    msg = parse(path)
    kind, zid = trace(msg)
    d = {
        "file": path,
        "mtime": os.stat(path).st_mtime,
        "rcpt": header(msg, "X-Original-To").strip("<>").lower(),
        "kind": kind or "plain",
        "id": zid,
        "mid": header(msg, "Message-ID"),
        "irt": header(msg, "In-Reply-To"),
        "subject": decoded(msg.get("Subject")),
    }
    if msg.get_content_type() == "multipart/report":
        d["kind"] = "bounce"
        with open(path, "rb") as f:
            d["mentions"] = re.findall(rb"<[^<>\s]+@e2e\.zipgate\.test>", f.read())
            d["mentions"] = sorted({m.decode() for m in d["mentions"]})
    if d["kind"] in ("plain", "encrypted"):
        atts = []
        for part in leaf_parts(msg):
            if not is_attachment(part):
                continue
            data = part.get_payload(decode=True) or b""
            name = part.get_filename() or ""
            zs = zip_state(data) if data[:2] == b"PK" else "not a zip"
            atts.append({"name": str(name), "type": part.get_content_type(), "zip": zs})
        d["attachments"] = atts
    return d


class Index:
    """All delivered mail, parsed once per file (cached next to the sink)."""

    def __init__(self, sink):
        self.cache_path = os.path.join(os.path.dirname(os.path.abspath(sink)), ".mailcheck-cache.json")
        try:
            with open(self.cache_path) as f:
                cache = json.load(f)
        except (OSError, ValueError):
            cache = {}
        self.mails = []
        changed = False
        for sub in ("new", "cur"):
            d = os.path.join(sink, sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                path = os.path.join(d, name)
                if path not in cache:
                    try:
                        cache[path] = describe(path)
                    except FileNotFoundError:
                        continue
                    changed = True
                self.mails.append(cache[path])
        self.mails.sort(key=lambda m: (m["mtime"], m["file"]))
        if changed:
            tmp = self.cache_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(cache, f)
            os.replace(tmp, self.cache_path)


def cmd_list(a):
    """One line per mail: kind id rcpt mtime mid in-reply-to file subject."""
    for m in Index(a.sink).mails:
        if a.kind and m["kind"] != a.kind and not (a.kind == "message" and m["kind"] in ("plain", "encrypted")):
            continue
        if a.id and m["id"] != a.id:
            continue
        if a.mid and a.mid not in (m["mid"], m["irt"]):
            continue
        if a.rcpt and m["rcpt"] != a.rcpt.lower():
            continue
        if a.files:
            print(m["file"])
            continue
        print("\t".join([m["kind"], m["id"] or "-", m["rcpt"] or "-", "%.6f" % m["mtime"], m["mid"] or "-",
                         m["irt"] or "-", m["file"], re.sub(r"\s", " ", m["subject"])]))
    return 0


def cmd_has_text(a):
    for part in leaf_parts(parse(a.file)):
        if part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True) or b""
        text = raw.decode(part.get_content_charset() or "utf-8", "replace")
        if a.text in text:
            return 0
    print("no text part of %s contains %r" % (a.file, a.text), file=sys.stderr)
    return 1


def cmd_text(a):
    for part in leaf_parts(parse(a.file)):
        if part.get_content_maintype() == "text":
            raw = part.get_payload(decode=True) or b""
            print(raw.decode(part.get_content_charset() or "utf-8", "replace"))
    return 0


def cmd_press(a):
    """Loads a page and posts its form's CSRF value to URL/ACTION, as a
    browser does; prints the status of the answer (303 when done)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    page = urllib.request.urlopen(a.url, timeout=10).read().decode("utf-8")
    m = re.search(r'name="csrf" value="([^"]*)"', page)
    if not m:
        print("no form on %s" % a.url, file=sys.stderr)
        return 1
    data = urllib.parse.urlencode({"csrf": m.group(1)}).encode()
    opener = urllib.request.build_opener(NoRedirect)
    try:
        status = opener.open(a.url + "/" + a.action, data=data, timeout=10).status
    except urllib.error.HTTPError as e:
        status = e.code
    print(status)
    return 0


def cmd_password(a):
    msg = parse(a.file)
    if trace(msg)[0] != "password":
        print("%s is not a password mail" % a.file, file=sys.stderr)
        return 1
    body = msg.get_payload(decode=True).decode(msg.get_content_charset() or "utf-8")
    m = re.search(r"(?:Password|パスワード):\s*(\S+)", body)
    if not m:
        print("no 'Password:' line in %s" % a.file, file=sys.stderr)
        return 1
    print(m.group(1))
    return 0


def cmd_extract_zip(a):
    msg = parse(a.file)
    atts = [p for p in leaf_parts(msg) if is_attachment(p)]
    if len(atts) != 1:
        print("%s has %d attachments, want exactly one zip: %s" % (
            a.file, len(atts), [p.get_filename() for p in atts]), file=sys.stderr)
        return 1
    part = atts[0]
    name = part.get_filename() or ""
    data = part.get_payload(decode=True) or b""
    if not name.lower().endswith(".zip") or data[:4] != b"PK\x03\x04":
        print("the attachment of %s is not a zip: %r %r" % (a.file, name, data[:8]), file=sys.stderr)
        return 1
    os.makedirs(a.dir, exist_ok=True)
    out = os.path.join(a.dir, os.path.basename(name))
    with open(out, "wb") as f:
        f.write(data)
    print(out)
    return 0


# Fields Postfix puts above a message it delivers to a Maildir.
TRACE_FIELDS = ("return-path", "x-original-to", "delivered-to", "received")


def cmd_untouched(a):
    with open(a.sent, "rb") as f:
        sent = f.read().replace(b"\r\n", b"\n")
    with open(a.delivered, "rb") as f:
        got = f.read()
    # swaks ends DATA with an empty line of its own: compare without it.
    sent, got = sent.rstrip(b"\n"), got.rstrip(b"\n")
    if not got.endswith(sent):
        # Say where they part, to make the report useful.
        i = 0
        tail = got[len(got) - len(sent):] if len(got) >= len(sent) else got
        while i < min(len(tail), len(sent)) and tail[i] == sent[i]:
            i += 1
        print("delivered message differs from the one sent near byte %d of %d: sent %r, got %r" % (
            i, len(sent), sent[max(0, i - 20):i + 40], tail[max(0, i - 20):i + 40]), file=sys.stderr)
        return 1
    added = got[:len(got) - len(sent)]
    names = [line.split(b":", 1)[0].decode("ascii", "replace").lower()
             for line in added.split(b"\n") if line and line[:1] not in (b" ", b"\t")]
    extra = [n for n in names if n not in TRACE_FIELDS]
    if extra:
        print("fields above the sent message other than Postfix's trace: %s" % extra, file=sys.stderr)
        return 1
    return 0


def cmd_tally(a):
    ledger = []
    with open(a.ledger) as f:
        for line in f:
            if line.strip():
                mid, rcpts, att, qid = (line.rstrip("\n").split("\t") + [""])[:4]
                ledger.append((mid, [r.lower() for r in rcpts.split(",")], att == "1", qid))
    mids = {m[0] for m in ledger}
    canceled = set(a.canceled or [])
    window = set()
    if a.window_qids:
        with open(a.window_qids) as f:
            window = {line.strip() for line in f if line.strip()}
    mails = Index(a.sink).mails

    copies = defaultdict(list)  # (mid, rcpt) -> delivered copies of the message itself
    passwords = Counter()  # (id, rcpt) -> password mails
    password_mids = {}  # id -> message the password mail answers
    bounces = []
    for m in mails:
        if m["kind"] in ("plain", "encrypted") and m["mid"] in mids:
            copies[(m["mid"], m["rcpt"])].append(m)
        elif m["kind"] == "password" and m["irt"] in mids:
            passwords[(m["id"], m["rcpt"])] += 1
            password_mids[m["id"]] = m["irt"]
        elif m["kind"] == "bounce" and mids.intersection(m.get("mentions", [])):
            bounces.append(m["file"])

    problems = []
    notes = []  # allowed by a flag, printed all the same
    delivered = duplicates = in_window = in_clear = 0
    jobs = defaultdict(set)  # zipgate id -> recipients that got the zip
    for mid, rcpts, att, qid in ledger:
        got_all = True
        for r in rcpts:
            cs = copies.get((mid, r), [])
            if not cs:
                got_all = False
                continue
            duplicates += len(cs) - 1
            if len(cs) > 1:
                ids = [c["id"] for c in cs]
                what = "%s reached %s %d times (ids %s, queue id %s)" % (mid, r, len(cs), ids, qid)
                if qid in window and len(set(ids)) == 1:
                    # Cut after the data, and every copy is of the same job:
                    # one password opens whichever zip the recipient opens.
                    in_window += len(cs) - 1
                    notes.append(what + ": in the one window")
                else:
                    (notes if a.duplicates_ok else problems).append(what)
            for c in cs:
                if att:
                    bad = clear_reason(c)
                    if bad:
                        in_clear += 1
                        problems.append("%s to %s delivered with attachments in the clear: %s (%s)" % (
                            mid, r, bad, c["file"]))
                    else:
                        jobs[c["id"]].add(r)
                elif c["kind"] != "plain" or c["attachments"]:
                    problems.append("%s had no attachments but was changed: X-Zipgate %s (%s)" % (
                        mid, c["kind"], c["file"]))
        delivered += got_all

    expected = released = 0
    waiting = []
    for zid, rcpts in sorted(jobs.items()):
        if zid in canceled:
            for r in rcpts:
                if passwords[(zid, r)]:
                    problems.append("password of canceled job %s reached %s" % (zid, r))
            continue
        expected += 1
        counts = [passwords[(zid, r)] for r in sorted(rcpts)]
        if any(c > 1 for c in counts):
            problems.append("password of job %s delivered more than once: %s" % (zid, dict(zip(sorted(rcpts), counts))))
        elif all(c == 1 for c in counts):
            released += 1
        else:
            waiting.append(zid)
    orphans = sorted({zid for zid, _r in passwords if zid not in jobs})
    if orphans:
        (notes if a.orphans_ok else problems).append(
            "password mails for zips nobody received: ids %s (answering %s)" % (
                orphans, sorted({password_mids[z] for z in orphans})))
    if bounces:
        problems.append("bounces: %s" % bounces)

    line = ("%s: sent=%d delivered=%d duplicates=%d delivered_in_clear=%d passwords_expected=%d "
            "passwords_delivered=%d" % (a.label, len(ledger), delivered, duplicates, in_clear, expected, released))
    if orphans or a.orphans_ok or a.window_qids:
        line += " orphan_passwords=%d" % len(orphans)
    if a.window_qids:
        line += " in_window=%d of %d cut after the data" % (in_window, len(window))
    for n in notes:
        print("  note: " + n, file=sys.stderr)
    for p in problems:
        print("  problem: " + p, file=sys.stderr)
    print(line)
    if problems:
        return 1
    if delivered < len(ledger) or waiting:
        if a.verbose:
            print("  waiting: %d undelivered, passwords of %s" % (len(ledger) - delivered, waiting), file=sys.stderr)
        return 2
    return 0


def clear_reason(c):
    """Why a delivered copy of a message with attachments is not safe, or ''."""
    if c["kind"] != "encrypted":
        return "no X-Zipgate: encrypted header"
    atts = c["attachments"]
    if len(atts) != 1:
        return "%d attachment parts: %s" % (len(atts), [x["name"] for x in atts])
    if atts[0]["zip"] != "encrypted":
        return "attachment %r: %s" % (atts[0]["name"], atts[0]["zip"])
    return ""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("list")
    s.add_argument("sink")
    s.add_argument("--kind")
    s.add_argument("--id")
    s.add_argument("--mid")
    s.add_argument("--rcpt")
    s.add_argument("--files", action="store_true")
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("has-text")
    s.add_argument("file")
    s.add_argument("text")
    s.set_defaults(fn=cmd_has_text)
    s = sub.add_parser("text")
    s.add_argument("file")
    s.set_defaults(fn=cmd_text)
    s = sub.add_parser("password")
    s.add_argument("file")
    s.set_defaults(fn=cmd_password)
    s = sub.add_parser("press")
    s.add_argument("url")
    s.add_argument("action")
    s.set_defaults(fn=cmd_press)
    s = sub.add_parser("extract-zip")
    s.add_argument("file")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_extract_zip)
    s = sub.add_parser("untouched")
    s.add_argument("sent")
    s.add_argument("delivered")
    s.set_defaults(fn=cmd_untouched)
    s = sub.add_parser("tally")
    s.add_argument("sink")
    s.add_argument("ledger")
    s.add_argument("--label", required=True)
    s.add_argument("--canceled", action="append")
    s.add_argument("--duplicates-ok", action="store_true")
    s.add_argument("--orphans-ok", action="store_true")
    s.add_argument("--window-qids")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_tally)
    a = p.parse_args()
    sys.exit(a.fn(a))


if __name__ == "__main__":
    main()
