#!/usr/bin/python3
"""Checks the budget ledger's transparency log from Python, holding only the log's verifier key.

    bash examples/python/generate.sh
    /usr/bin/python3 examples/python/transparency.py 127.0.0.1:50051 'origin+hash+base64key'

It fetches the latest checkpoint (GetCheckpoint) and verifies its Ed25519 signature itself (the
signed-note format of golang.org/x/mod/sumdb/note, in pure Python below), lists journal entries,
recomputes each one's leaf with the canonical encoding of docs/transparency.md, asks for its
inclusion proof in the checkpoint's tree (GetInclusionProof), checks that the server's leaf is
the one recomputed, and that the audit path leads to the signed root (RFC 6962 / RFC 9162
§2.1.3.2). It exits 1 when anything does not verify.

    /usr/bin/python3 examples/python/transparency.py --selftest vectors.json

checks the same functions on vectors written by the Go tests (ledger/translog), without a server.
Nothing here but the standard library, and the generated stubs for talking to a server.
"""

import base64
import hashlib
import json
import os
import struct
import sys
import time

# ---- RFC 6962 hashing and the canonical leaf (docs/transparency.md) ----


def leaf_hash(leaf):
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def _str(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def micros_of_rfc3339(t):
    """Microseconds since the epoch of an RFC 3339 UTC time ("2021-03-01T09:00:00.123456Z")."""
    import calendar

    t = t.rstrip("Z")
    whole, _, frac = t.partition(".")
    secs = calendar.timegm(__import__("time").strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    frac = (frac + "000000")[:6]
    return secs * 1_000_000 + int(frac)


def encode_leaf(entry):
    """The canonical encoding, version 1, of a journal entry given as the API's JSON (protojson
    field names) or as a dict with the same keys."""
    kind = entry["kind"]
    if kind.startswith("ENTRY_KIND_"):
        kind = kind[len("ENTRY_KIND_"):]
    b = b"\x01" + struct.pack(">Q", int(entry["sequence"]))
    b += _str(entry["name"].split("/", 1)[1])
    b += _str(kind)
    b += _str(entry.get("currencyCode", ""))
    b += _str(entry.get("caller", ""))
    b += _str(entry.get("requestId", ""))
    b += _str(entry.get("memo", ""))
    created = entry["createTimeMicros"] if "createTimeMicros" in entry else micros_of_rfc3339(entry["createTime"])
    b += struct.pack(">q", created)
    if "effectiveTimeMicros" in entry:
        effective = entry["effectiveTimeMicros"]
    elif "effectiveTime" in entry:
        effective = micros_of_rfc3339(entry["effectiveTime"])
    else:
        effective = created
    b += struct.pack(">q", effective)
    postings = entry.get("postings", [])
    b += struct.pack(">I", len(postings))
    for p in postings:
        b += _str(p["account"]) + struct.pack(">q", int(p["amount"]))
    return b


def root_from_inclusion(index, size, leaf_h, proof):
    """RFC 9162 §2.1.3.2: the root that an inclusion proof leads to (ValueError if malformed)."""
    if index >= size:
        raise ValueError("leaf index beyond the tree")
    fn, sn, r = index, size - 1, leaf_h
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


# ---- Ed25519 verification (RFC 8032 §6, reference code) ----

_p = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_d = -121665 * pow(121666, _p - 2, _p) % _p
_I = pow(2, (_p - 1) // 4, _p)


def _recover_x(y, sign):
    if y >= _p:
        return None
    x2 = (y * y - 1) * pow(_d * y * y + 1, _p - 2, _p)
    if x2 % _p == 0:
        return None if sign else 0
    x = pow(x2, (_p + 3) // 8, _p)
    if (x * x - x2) % _p != 0:
        x = x * _I % _p
    if (x * x - x2) % _p != 0:
        return None
    if (x & 1) != sign:
        x = _p - x
    return x


_Gy = 4 * pow(5, _p - 2, _p) % _p
_Gx = _recover_x(_Gy, 0)
_G = (_Gx, _Gy, 1, _Gx * _Gy % _p)


def _add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
    C = 2 * P[3] * Q[3] * _d % _p
    D = 2 * P[2] * Q[2] % _p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % _p, G * H % _p, F * G % _p, E * H % _p)


def _mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _add(Q, P)
        P = _add(P, P)
        s >>= 1
    return Q


def _equal(P, Q):
    return (P[0] * Q[2] - Q[0] * P[2]) % _p == 0 and (P[1] * Q[2] - Q[1] * P[2]) % _p == 0


def _decompress(s):
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _p)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    A, R = _decompress(public), _decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(R, _mul(h, A)))


# ---- signed notes and checkpoints (C2SP signed-note, tlog-checkpoint) ----


def open_checkpoint(note, vkey):
    """Verifies a signed checkpoint with a note verifier key; returns (origin, size, root)."""
    name, keyhash, key = vkey.strip().split("+", 2)  # the base64 key may hold "+"
    key = base64.b64decode(key)
    if key[0] != 1 or len(key) != 33:
        raise ValueError("not an Ed25519 verifier key")
    expected = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if expected.hex() != keyhash:
        raise ValueError("the verifier key's hash does not match its name and key")
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("a signed note has a blank line before its signatures")
    text += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        sname, _, b64 = line[2:].partition(" ")
        sig = base64.b64decode(b64)
        if sname == name and sig[:4] == expected and ed25519_verify(key[1:], text.encode(), sig[4:]):
            verified = True
    if not verified:
        raise ValueError("no valid signature by the verifier key")
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != name:
        raise ValueError("the checkpoint is of another log")
    return origin, size, root


def check_entry(entry, proof, root):
    """Recomputes the entry's leaf, compares it with the proof's, and verifies the path."""
    leaf = encode_leaf(entry)
    if leaf != proof["leaf"]:
        raise ValueError(f"entry {entry['sequence']}: the server's leaf is not the entry's encoding")
    if proof["leaf_index"] != int(entry["sequence"]) - 1:
        raise ValueError(f"entry {entry['sequence']}: leaf index {proof['leaf_index']}")
    got = root_from_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(leaf), proof["hashes"])
    if got != root:
        raise ValueError(f"entry {entry['sequence']}: the audit path does not lead to the signed root")


def selftest(path):
    with open(path) as f:
        v = json.load(f)
    _, size, root = open_checkpoint(v["checkpoint"], v["verifier_key"])
    for item in v["items"]:
        p = item["proof"]
        proof = {"leaf": base64.b64decode(p["leaf"]), "leaf_index": p["leaf_index"], "tree_size": size,
                 "hashes": [base64.b64decode(h) for h in p["hashes"]]}
        check_entry(item["entry"], proof, root)
    # A forged signature and a forged entry must fail.
    try:
        open_checkpoint(v["checkpoint"].replace("\n" + str(size) + "\n", "\n" + str(size + 1) + "\n", 1), v["verifier_key"])
        raise SystemExit("selftest: a checkpoint with another size verified")
    except ValueError:
        pass
    forged = dict(v["items"][0]["entry"], memo="forged")
    p = v["items"][0]["proof"]
    try:
        check_entry(forged, {"leaf": encode_leaf(forged), "leaf_index": p["leaf_index"], "tree_size": size,
                             "hashes": [base64.b64decode(h) for h in p["hashes"]]}, root)
        raise SystemExit("selftest: a forged entry verified")
    except ValueError:
        pass
    print(f"selftest: checkpoint of {size} entries and {len(v['items'])} inclusion proofs verified")


def error_reason(err):
    """Returns the reason of the google.rpc.ErrorInfo a failed call carries, or ""."""
    from google.rpc import error_details_pb2, status_pb2

    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info.reason
    return ""


def main(target, vkey):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "deps"))
    sys.path.insert(0, os.path.join(here, "gen"))
    try:
        import grpc
        from google.protobuf import json_format
        from budgetledger.v1 import journal_pb2, journal_pb2_grpc
    except ImportError as e:
        sys.exit(f"transparency.py: {e}: run examples/python/generate.sh first, with Debian's python3-grpcio")
    journal = journal_pb2_grpc.JournalServiceStub(grpc.insecure_channel(target))
    # Checkpoints are signed every N entries or T seconds: wait (up to 10 s) for one that covers
    # some entries.
    for _ in range(50):
        try:
            note = journal.GetCheckpoint(journal_pb2.GetCheckpointRequest(), timeout=10).checkpoint
        except grpc.RpcError as err:
            if error_reason(err) == "LOG_DISABLED":
                sys.exit(f"transparency.py: {target} runs without a log key (LOG_DISABLED): start ledgerd with --log-key (docs/transparency.md)")
            raise
        origin, size, root = open_checkpoint(note, vkey)
        if size > 0:
            break
        time.sleep(0.2)
    if size == 0:
        raise ValueError("no checkpoint covers any entry: write some first")
    print(f"checkpoint of {origin}: {size} entries, signature verified")
    resp = journal.ListJournalEntries(journal_pb2.ListJournalEntriesRequest(page_size=1000), timeout=10)
    checked = 0
    for e in resp.journal_entries:
        if e.sequence > size:
            break
        entry = json_format.MessageToDict(e)
        entry["createTimeMicros"] = e.create_time.seconds * 1_000_000 + e.create_time.nanos // 1000
        if e.HasField("effective_time"):
            entry["effectiveTimeMicros"] = e.effective_time.seconds * 1_000_000 + e.effective_time.nanos // 1000
        p = journal.GetInclusionProof(journal_pb2.GetInclusionProofRequest(sequence=e.sequence, tree_size=size), timeout=10)
        check_entry(entry, {"leaf": p.leaf, "leaf_index": p.leaf_index, "tree_size": p.tree_size, "hashes": list(p.hashes)}, root)
        checked += 1
    print(f"{checked} entries: leaves recomputed and inclusion in the signed tree verified")


if __name__ == "__main__":
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--selftest":
            selftest(sys.argv[2])
        elif len(sys.argv) == 3:
            main(sys.argv[1], sys.argv[2])
        else:
            sys.exit(__doc__)
    except ValueError as e:
        sys.exit(f"transparency.py: does not verify: {e}")
