package analysis

import (
	"encoding/binary"
	"errors"
	"io/fs"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

// loadSavedIndex uses <name>.index the way a FileStorage open does
// (_restore_index and _check_sanity): the saved map is taken when it loads,
// its position lies on a transaction boundary, and the newest records (up
// to five, skipping undone and empty transactions) agree with it.
// A saved index that fails the check is ignored with FileStorage's warning
// "Ignoring index for <name>". It returns nil when there is no usable
// index covering the whole file: FileStorage would then scan, from the saved
// position or from the start; ScanIndex can only scan the whole file, so
// a partial index is treated as no index.
func loadSavedIndex(f *fsformat.File, name string, warn func(string)) *OidIndex {
	x, pos, err := fsindex.Read(name + ".index")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || !indexSane(f, x, int64(pos)) {
		if warn != nil {
			warn("Ignoring index for " + name)
		}
		return nil
	}
	if int64(pos) != f.Size() {
		return nil
	}
	idx := &OidIndex{}
	for oid, p := range x.All() {
		idx.Set(fsformat.Oid(oid), int64(p))
	}
	return idx
}

// indexSane is FileStorage._check_sanity.
func indexSane(f *fsformat.File, x *fsindex.Index, pos int64) bool {
	if pos < 100 || f.Size() < pos {
		return false
	}
	const maxChecked = 5
	checked := 0
	var b [8]byte
	for checked < maxChecked {
		if _, err := f.ReaderAt().ReadAt(b[:], pos-8); err != nil {
			return false
		}
		tl := int64(binary.BigEndian.Uint64(b[:]))
		if tl < 0 {
			return false
		}
		pos = pos - tl - 8
		if pos < 4 {
			return false
		}
		h, err := f.ReadTxnHeaderAt(pos)
		if err != nil || h.Len != tl {
			return false
		}
		if h.Status == fsformat.StatusUndone {
			continue
		}
		if h.Status != fsformat.StatusNormal && h.Status != fsformat.StatusPacked {
			return false
		}
		if tl < h.HeaderLen() {
			return false
		}
		tend := pos + tl
		opos := pos + h.HeaderLen()
		if opos == tend {
			continue
		}
		for opos < tend && checked < maxChecked {
			dh, err := f.ReadDataHeaderAt(opos)
			if err != nil {
				return false
			}
			rl := dh.RecordLen()
			if rl < 0 || opos+rl > tend || dh.TxnPos != pos {
				return false
			}
			if p, ok := x.Get(uint64(dh.Oid)); !ok || int64(p) != opos {
				return false
			}
			checked++
			opos += rl
		}
		return true
	}
	return true
}
