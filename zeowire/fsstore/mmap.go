package fsstore

import (
	"syscall"
)

// Loads read the committed part of Data.fs through a read-only shared
// mapping when the platform allows it: a load of a small object is then a
// copy instead of a pread system call (a third of a load's server CPU on
// the machines measured). The mapping is made larger than the file so that
// it rarely has to be redone as the file grows; only bytes below s.end
// (committed, so present in the file) are ever touched, which keeps access
// clear of SIGBUS past the end of the file. Without a mapping (mmap
// failed, or an empty file) reads fall back to pread.

const minMap = 64 << 20

// remap makes the mapping cover at least end bytes; called with s.mu held
// for writing (or before the store is shared).
func (s *Store) remap(end int64) {
	if s.mm != nil && end <= int64(len(s.mm)) {
		return
	}
	s.unmap()
	size := max(minMap, 2*end)
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	if int64(int(size)) != size {
		return
	}
	mm, err := syscall.Mmap(int(s.f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return // pread it is
	}
	s.mm = mm
}

func (s *Store) unmap() {
	if s.mm != nil {
		syscall.Munmap(s.mm)
		s.mm = nil
	}
}

// readAt fills b from pos: from the mapping when the range is committed
// data, else with pread (which reports a short file as an error).
func (s *Store) readAt(b []byte, pos int64) error {
	if end := pos + int64(len(b)); pos >= 0 && end <= s.end && end <= int64(len(s.mm)) {
		copy(b, s.mm[pos:end])
		return nil
	}
	_, err := s.f.ReadAt(b, pos)
	return err
}

// committed returns the committed bytes [pos, pos+n) without copying when
// they are mapped; ok is false otherwise.
func (s *Store) committed(pos, n int64) ([]byte, bool) {
	if end := pos + n; pos >= 0 && end <= s.end && end <= int64(len(s.mm)) {
		return s.mm[pos:end], true
	}
	return nil, false
}
