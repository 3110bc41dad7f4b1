package store

import (
	"reflect"
	"testing"
)

// TestNativeUUIDValues protects what COPY is handed for the columns migration 21 made native
// UUIDs: the 16 bytes of each canonical UUID given as text (pgx encodes them directly; a string
// went through an error and a fallback per value), and every other value as it was, so that COPY
// still refuses a malformed id and no column of another type is touched.
func TestNativeUUIDValues(t *testing.T) {
	const id = "01a238d0-1072-733f-b3ef-9730f51c5af5"
	want := [16]byte{0x01, 0xa2, 0x38, 0xd0, 0x10, 0x72, 0x73, 0x3f, 0xb3, 0xef, 0x97, 0x30, 0xf5, 0x1c, 0x5a, 0xf5}
	rows := [][]any{
		{id, "envelope-1", id, int64(5)},
		{"not-a-uuid", "envelope-1", "01A238D0-1072-733F-B3EF-9730F51C5AF5", nil},
	}
	nativeUUIDValues("payments", []string{"id", "envelope_id", "entry_id", "amount"}, rows)
	wantRows := [][]any{
		{want, "envelope-1", want, int64(5)},
		{"not-a-uuid", "envelope-1", "01A238D0-1072-733F-B3EF-9730F51C5AF5", nil},
	}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("payments rows for COPY:\n got  %#v\n want %#v", rows, wantRows)
	}
	holds := [][]any{{id, id}}
	nativeUUIDValues("holds", []string{"id", "commitment_id"}, holds)
	if holds[0][0] != id || holds[0][1] != id {
		t.Errorf("holds keep TEXT ids, got %#v", holds[0])
	}
}
