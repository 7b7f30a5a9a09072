package fsformat

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestStorageLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	l, err := LockStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(path + ".lock")
	if string(content) != " "+strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q", content)
	}
	// flock locks belong to the open file description: a second open in the
	// same process conflicts, as another process would.
	_, err = LockStorage(path)
	var le *LockError
	if !errors.As(err, &le) || err.Error() != "Couldn't lock '"+path+".lock'" {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockStorage(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("lock file removed: %v", err)
	}
}
