package budgetledgerv1

// MaxResponseSize bounds the encoded size, in bytes, of any response of this API to a valid
// request: 64 MiB. gRPC's default receive limit is 4 MiB, below what a large BatchCommit answers
// (about 4.7 MB for 10,000 awards with ordinary names), so a client left at that default would
// report as failed a batch the server made. Servers send up to this size (ledgerd's default
// --max-send-msg-size) and clients accept it (the Go client's MaxCallRecvMsgSize).
//
// How it was computed (TestMaxResponseSizeCoversLargestBatchCommit redoes it from the .proto's
// validation rules): the largest response is BatchCommit's, 10,000 results (max_items), each a
// Commitment whose strings are at their max_len in 4-byte UTF-8 characters (beneficiary, project
// and territory 200, description 500, envelope name 10+63 ASCII) and whose integers take 10 bytes:
// 4,630 bytes a result, 46.3 MB in all. A refused item's ItemRefusal (a reason, a message
// and metadata naming its envelope, project and figures) is smaller than that. 64 MiB (67.1 MB)
// leaves a margin of over 40 % for fields added later.
const MaxResponseSize = 64 << 20
