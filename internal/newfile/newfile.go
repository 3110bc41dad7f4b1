// Package newfile gives a complete file its name without ever replacing another: what ledgerd
// writes for the first time (a backup, a signing key, a checkpoint) is written under a temporary
// name beside its destination, then named by Name.
package newfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Name gives the complete file tmp the name dest, in the same folder, durably (the folder is
// synced). It never replaces a file: a dest that exists is an error wrapping fs.ErrExist. The
// name is a hard link (which refuses an existing file), then tmp is removed; on a file system
// without hard links, a rename, after checking again that dest is free (a file made between the
// check and the rename would be replaced).
func Name(tmp, dest string) error {
	exists := &existsError{dest}
	if err := os.Link(tmp, dest); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return exists
		}
		if _, serr := os.Lstat(dest); serr == nil {
			return exists
		}
		if err := os.Rename(tmp, dest); err != nil {
			return err
		}
	} else if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("removing %s after naming %s: %w", tmp, dest, err)
	}
	return Sync(filepath.Join(filepath.Dir(dest), "."))
}

// Sync flushes a file, or a folder's entries, to stable storage.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// existsError says that a destination exists already; it is fs.ErrExist.
type existsError struct{ path string }

func (e *existsError) Error() string        { return e.path + " already exists" }
func (e *existsError) Is(target error) bool { return target == fs.ErrExist }
