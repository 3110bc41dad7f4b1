package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	if err := os.Link(f.Name(), f.dest); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists", f.dest)
		}
		// A file system without hard links: a rename, after checking again that dest is free
		// (a file made between the check and the rename would be replaced), as ledgerd backup does.
		if _, serr := os.Lstat(f.dest); serr == nil {
			return fmt.Errorf("%s already exists", f.dest)
		}
		if err := os.Rename(f.Name(), f.dest); err != nil {
			return err
		}
	}
	// The new name itself lasts through a crash once its folder is synced.
	if dir, err := os.Open(filepath.Dir(f.dest)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// abort removes the temporary file; after commit, it leaves the destination in place.
func (f *newFile) abort() {
	f.Close()
	os.Remove(f.Name())
}
