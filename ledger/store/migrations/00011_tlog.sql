-- The transparency log (issue 14, docs/transparency.md): the journal as an RFC 6962 Merkle tree
-- whose leaf n-1 is the entry at position n. tlog_nodes keeps the hash (lowercase hex SHA-256) of
-- every complete perfect subtree, by level (0: the leaves) and index, written by the transaction
-- that positions the entries (store/tlog.go), so that a root or a proof reads O(log n) rows.
-- tlog_head is the tree's size; tlog_checkpoints keeps every signed checkpoint.

-- +goose Up
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE tlog_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL CHECK (size >= 0)
);
INSERT INTO tlog_head (id, size) VALUES (1, 0);
CREATE TABLE tlog_checkpoints (
    size       BIGINT PRIMARY KEY CHECK (size >= 0),
    root_hash  TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE tlog_checkpoints;
DROP TABLE tlog_head;
DROP TABLE tlog_nodes;
