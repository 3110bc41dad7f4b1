package budgetledgerv1

// MaxResponseSize bounds the encoded size, in bytes, of any response of this API to a valid
// request: 128 MiB. gRPC's default receive limit is 4 MiB, below what a large BatchCommit answers
// (about 4.7 MB for 10,000 awards with ordinary names), so a client left at that default would
// report as failed a batch the server made. Servers send up to this size (ledgerd's default
// --max-send-msg-size) and clients accept it (the Go client's MaxCallRecvMsgSize).
//
// How it was computed (TestMaxResponseSizeCoversLargestBatchCommit redoes it from the .proto's
// validation rules): the largest response is BatchCommit's, 10,000 results (max_items), each a
// Commitment whose strings are at their max_len in 4-byte UTF-8 characters (beneficiary, project
// and territory 200, description 500, envelope name 10+63 ASCII; since issue 13 also the
// publication fields — decision reference and legal name 200, purpose 256, SIRET and RNA — and a
// closing's reason, 500) and whose integers take 10 bytes: 9,343 bytes a result, 93.5 MB in all.
// A refused item's ItemRefusal (a reason, a message and metadata naming its envelope, project and
// figures) is smaller than that. 128 MiB (134.2 MB) leaves a margin of over 40 % for fields added
// later. (It was 64 MiB before the publication fields; a client built with that limit may fail
// on a 10,000-award batch whose every award carries them at their longest.)
const MaxResponseSize = 128 << 20
