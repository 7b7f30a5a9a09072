package fsformat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// StorageLock is FileStorage's lock on <Data.fs>.lock (zc.lockfile): an
// exclusive, non-blocking flock(2) on the whole file, whose content is
// " <pid>\n". flock, not fcntl, so that it excludes running Python ZODB
// processes (filestorage.md §10.1). The file stays after Unlock, as with
// ZODB; its presence means nothing, only the flock does.
type StorageLock struct {
	f *os.File
}

// LockError means another process holds the lock; Msg is ZODB's text.
type LockError struct {
	Path string
}

func (e *LockError) Error() string { return fmt.Sprintf("Couldn't lock '%s'", e.Path) }

// LockStorage takes the lock of the storage whose data file is path. The
// Appender does not lock by itself: writers that may run beside a ZODB
// process (pack, serve, reindex) call this first and keep the lock until
// they are done.
func LockStorage(path string) (*StorageLock, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockError{Path: name}
		}
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(" "+strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StorageLock{f: f}, nil
}

// Unlock releases the lock (the file is left in place).
func (l *StorageLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
