#!/usr/bin/python3
"""A Python client of the budget ledger, on Debian's python3-grpcio and stubs made by generate.sh.

    bash examples/python/generate.sh
    /usr/bin/python3 examples/python/client.py 127.0.0.1:50051

It creates an envelope of 1 M EUR (ids new at every run), awards 300,000 and 200,000 EUR from it,
releases 50,000 EUR of the first award, reads the envelope, and asks for more than is left: the
refusal's google.rpc.ErrorInfo is decoded from the grpc-status-details-bin trailer. It exits 1 when
anything differs from what the API promises.
"""

import os
import sys
import uuid

# gen/: the API's stubs, made by generate.sh. deps/: the modules they import (buf.validate and
# google.api), shipped generated with this example.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "deps"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import grpc
    from budgetledger.v1 import commitment_pb2, commitment_pb2_grpc
    from budgetledger.v1 import envelope_pb2, envelope_pb2_grpc
    from google.rpc import error_details_pb2, status_pb2
except ImportError as e:  # pragma: no cover - a set-up problem, said plainly
    sys.exit(
        f"client.py: {e}: run examples/python/generate.sh first, with Debian's /usr/bin/python3 "
        "and python3-grpcio and python3-protobuf installed"
    )

TIMEOUT = 10  # seconds, for every call

EUR = 100  # cents
ALLOCATION = 1_000_000 * EUR
AWARD_1 = 300_000 * EUR
AWARD_2 = 200_000 * EUR
RELEASE = 50_000 * EUR
LEFT = ALLOCATION - AWARD_1 - AWARD_2 + RELEASE  # 550,000 EUR
TOO_MUCH = LEFT + 50_000 * EUR


class Unexpected(Exception):
    """Something the ledger answered is not what its API promises."""


def expect(cond, what):
    if not cond:
        raise Unexpected(what)


def request_id():
    """A fresh idempotency key (AIP-155): a UUID."""
    return str(uuid.uuid4())


def error_details(err):
    """Returns the google.rpc.Status that a failed call carries in its trailing metadata.

    gRPC servers put the whole google.rpc.Status, serialized, in the binary trailer
    grpc-status-details-bin; grpcio hands binary ("-bin") metadata over already base64-decoded.
    """
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    raise Unexpected(f"no grpc-status-details-bin in the trailers of {err.code().name}: {err.details()}")


def error_info(status):
    """The google.rpc.ErrorInfo among the details of a google.rpc.Status."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise Unexpected(f"no google.rpc.ErrorInfo in the details: {[d.type_url for d in status.details]}")


def run(target):
    run_id = uuid.uuid4().hex[:12]
    envelope_id = f"py-{run_id}"
    name = f"envelopes/{envelope_id}"

    with grpc.insecure_channel(target) as channel:
        envelopes = envelope_pb2_grpc.EnvelopeServiceStub(channel)
        commitments = commitment_pb2_grpc.CommitmentServiceStub(channel)

        created = envelopes.CreateEnvelope(
            envelope_pb2.CreateEnvelopeRequest(
                envelope_id=envelope_id,
                display_name="Python example fund",
                allocation=ALLOCATION,
                request_id=request_id(),
            ),
            timeout=TIMEOUT,
        )
        env = created.envelope
        print(f"created {env.name}: {env.allocation} {env.currency_code} cents")
        expect(env.name == name and env.available == ALLOCATION and env.currency_code == "EUR",
               f"created envelope {env}")

        # Two awards. The first is sent twice with one request_id: the retry returns the first
        # answer and awards nothing more.
        award_1 = commitment_pb2.CommitRequest(
            envelope=name, beneficiary="siren:200054781", project="guichet-numerique",
            amount=AWARD_1, request_id=request_id(),
        )
        first = commitments.Commit(award_1, timeout=TIMEOUT)
        retry = commitments.Commit(award_1, timeout=TIMEOUT)
        expect(retry.commitment.name == first.commitment.name and retry.journal_entry == first.journal_entry,
               "a retry with the same request_id made another award")
        print(f"awarded {first.commitment.amount} to {first.commitment.project}: {first.commitment.name}"
              " (a retry with the same request_id returned the same commitment)")

        second = commitments.Commit(
            commitment_pb2.CommitRequest(
                envelope=name, beneficiary="siren:217500016", project="gestion-relation-usagers",
                amount=AWARD_2, request_id=request_id(),
            ),
            timeout=TIMEOUT,
        )
        print(f"awarded {second.commitment.amount} to {second.commitment.project}: {second.commitment.name};"
              f" {second.envelope.available} left")
        expect(second.envelope.available == ALLOCATION - AWARD_1 - AWARD_2,
               f"available after two awards: {second.envelope.available}")

        released = commitments.Release(
            commitment_pb2.ReleaseRequest(
                commitment=first.commitment.name, amount=RELEASE,
                reason="final cost lower than planned", request_id=request_id(),
            ),
            timeout=TIMEOUT,
        )
        c = released.commitment
        print(f"released {c.released} of {c.name}: {c.remaining} remains committed")
        expect(c.released == RELEASE and c.remaining == AWARD_1 - RELEASE, f"commitment after release: {c}")

        env = envelopes.GetEnvelope(envelope_pb2.GetEnvelopeRequest(name=name), timeout=TIMEOUT).envelope
        print(f"{env.name}: allocation {env.allocation}, committed {env.committed}, available {env.available},"
              f" released {env.released}, {env.commitment_count} commitments")
        expect(env.available == LEFT and env.committed == AWARD_1 + AWARD_2 - RELEASE
               and env.released == RELEASE and env.commitment_count == 2
               and env.allocation == env.committed + env.allocated_to_children + env.available,
               f"envelope after the release: {env}")

        try:
            commitments.Commit(
                commitment_pb2.CommitRequest(
                    envelope=name, beneficiary="siren:200054781", project="too-big",
                    amount=TOO_MUCH, request_id=request_id(),
                ),
                timeout=TIMEOUT,
            )
        except grpc.RpcError as err:
            status = error_details(err)
            info = error_info(status)
            print(f"over-commit refused: {err.code().name}: {err.details()}")
            print(f"  ErrorInfo reason={info.reason} domain={info.domain}")
            for key in sorted(info.metadata):
                print(f"    {key} = {info.metadata[key]}")
            expect(err.code() == grpc.StatusCode.FAILED_PRECONDITION, f"code {err.code().name}")
            expect(status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and status.message == err.details(),
                   f"google.rpc.Status {status.code} {status.message!r} differs from the call's status")
            expect(info.reason == "INSUFFICIENT_FUNDS", f"reason {info.reason}")
            expect(info.domain == "budgetledger.github.io", f"domain {info.domain}")
            expect(info.metadata.get("available") == str(LEFT), f"available {info.metadata.get('available')}")
            expect(info.metadata.get("requested") == str(TOO_MUCH), f"requested {info.metadata.get('requested')}")
            expect(info.metadata.get("envelope") == name, f"envelope {info.metadata.get('envelope')}")
        else:
            raise Unexpected(f"an award of {TOO_MUCH} with {LEFT} available was accepted")

        env = envelopes.GetEnvelope(envelope_pb2.GetEnvelopeRequest(name=name), timeout=TIMEOUT).envelope
        expect(env.available == LEFT and env.commitment_count == 2, f"the refused award changed the envelope: {env}")


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LEDGER_ADDRESS", "127.0.0.1:50051")
    try:
        run(target)
    except Unexpected as e:
        print(f"client.py: unexpected: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"client.py: call failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print("python example: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
