package fsstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/zeowire"
)

// savedIndex is a Data.fs.index loaded at open: the map and the end of data
// it was saved at.
type savedIndex struct {
	idx *fsindex.Index
	pos int64
}

// readSavedIndex loads Data.fs.index as FileStorage's _restore_index does:
// a missing file is silently no index; one that does not load logs
// "loading index" and is no index. It then applies a check FileStorage does
// not make, cheap next to the scan it saves: every position must lie in
// the data the index claims to cover, so that no load can ever be sent
// past it by a corrupt or foreign index (the warning is then FileStorage's
// "Ignoring index for").
func (s *Store) readSavedIndex() *savedIndex {
	x, pos, err := fsindex.Read(s.path + ".index")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		s.warn(fmt.Sprintf("loading index: %v", err))
		return nil
	}
	if pos > 1<<62 || !positionsBelow(x, int64(pos)) {
		s.ignoringIndex()
		return nil
	}
	return &savedIndex{idx: x, pos: int64(pos)}
}

// positionsBelow reports whether every position in x is a possible data
// record start before end.
func positionsBelow(x *fsindex.Index, end int64) bool {
	for _, p := range x.All() {
		if p < fsformat.FileHeaderLen+fsformat.TxnHeaderLen || int64(p)+fsformat.DataHeaderLen > end {
			return false
		}
	}
	return true
}

// ignoringIndex logs FileStorage's warning for a saved index that fails its
// sanity check (with the absolute path of Data.fs, as FileStorage's
// _file_name is).
func (s *Store) ignoringIndex() {
	abs, err := filepath.Abs(s.path)
	if err != nil {
		abs = s.path
	}
	s.warn("Ignoring index for " + abs)
}

// openReadOnly opens the file without lock and builds the index: from the
// saved index and a scan of what follows its position when the index
// passes FileStorage's check, else from a full scan. Nothing is written.
func (s *Store) openReadOnly() error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	var idx *fsindex.Index
	var res fsformat.ScanResult
	scanned := false
	s.scanFrom = fsformat.FileHeaderLen
	if saved := s.readSavedIndex(); saved != nil {
		li := &lockedIndex{mu: &s.mu, x: saved.idx, scanning: true}
		ltid, err := fsformat.CheckSavedIndex(f, st.Size(), s.path, li, saved.pos)
		switch {
		case err == nil:
			if res, err = fsformat.ScanIndexFrom(f, st.Size(), s.path, li, saved.pos, ltid, s.warn); err != nil {
				f.Close()
				return err
			}
			idx, scanned, s.scanFrom = saved.idx, true, saved.pos
		case errors.Is(err, fsformat.ErrIndexUnusable):
			s.ignoringIndex()
		default:
			f.Close()
			return err
		}
	}
	if !scanned {
		idx = fsindex.New()
		li := &lockedIndex{mu: &s.mu, x: idx, scanning: true}
		if res, err = fsformat.ScanIndex(f, s.path, li, s.warn); err != nil {
			f.Close()
			return err
		}
	}
	if res.Magic != fsformat.MagicFS30 {
		f.Close()
		return fmt.Errorf("%s: Python 2 (FS21) file, which FileStorage on Python 3 refuses", s.path)
	}
	maxOid, _ := idx.MaxOid()
	s.f, s.idx, s.end, s.last = f, idx, res.End, zeowire.Tid(res.LastTid)
	s.remap(s.end)
	s.nextOid = zeowire.Oid(maxOid)
	return nil
}
