package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/budgetledger/budgetledger/internal/newfile"
)

// newFile is a file that a command writes for the first time (a signing key, a checkpoint): it is
// written beside its destination under a temporary name, synced, and linked into place only once
// complete. A failed write (a full disk) leaves nothing at the destination, neither an empty nor a
// truncated file that a rerun would then have to be told to remove, and an existing file there is
// refused, never replaced (the link fails where O_EXCL would).
type newFile struct {
	*os.File
	dest string
	perm os.FileMode
}

// createNewFile starts the file dest, to have mode perm once in place.
func createNewFile(dest string, perm os.FileMode) (*newFile, error) {
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("%s already exists", dest)
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.tmp") // mode 0600 until commit
	if err != nil {
		return nil, err
	}
	return &newFile{File: f, dest: dest, perm: perm}, nil
}

// commit puts the complete file in place, refusing a file made at dest since; the temporary name
// is gone whatever happens.
func (f *newFile) commit() error {
	defer f.abort()
	if err := f.Chmod(f.perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return newfile.Name(f.Name(), f.dest)
}

// abort removes the temporary file; after commit, it leaves the destination in place.
func (f *newFile) abort() {
	f.Close()
	os.Remove(f.Name())
}
