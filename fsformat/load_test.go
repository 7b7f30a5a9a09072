package fsformat

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// TestLoadRevisions checks LoadRecord, LoadSerial and LoadBefore against
// the revisions seen by a forward scan of the unpacked fixtures.
func TestLoadRevisions(t *testing.T) {
	for _, name := range []string{"basic.fs", "dangling.fs", "blobs/Data.fs"} {
		f, err := Open(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		type rev struct {
			tid  Tid
			pos  int64
			data []byte // resolved; nil: no data
		}
		revs := map[Oid][]rev{}
		for txn, err := range f.Transactions(IterOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			for rec, err := range txn.Records() {
				if err != nil {
					t.Fatal(err)
				}
				data := rec.Data
				if rec.DataLen == 0 {
					data, _, _, err = f.LoadBack(rec.Oid, rec.Back)
					if errors.Is(err, ErrNoData) {
						data = nil
					} else if err != nil {
						t.Fatal(err)
					}
				}
				revs[rec.Oid] = append(revs[rec.Oid], rev{rec.Tid, rec.Pos, bytes.Clone(data)})
			}
		}
		checked := 0
		for oid, rs := range revs {
			cur := rs[len(rs)-1]
			data, h, err := f.LoadRecord(cur.pos)
			if cur.data == nil {
				if !errors.Is(err, ErrNoData) {
					t.Errorf("%s: oid %s: current revision has no data, LoadRecord: %v", name, oid, err)
				}
			} else if err != nil || !bytes.Equal(data, cur.data) || h.Tid != cur.tid {
				t.Errorf("%s: oid %s: LoadRecord: %v", name, oid, err)
			}
			for i, r := range rs {
				data, err := f.LoadSerial(cur.pos, r.tid)
				if r.data == nil {
					if !errors.Is(err, ErrNoData) {
						t.Errorf("%s: oid %s: LoadSerial(%s) of a deletion: %v", name, oid, r.tid, err)
					}
				} else if err != nil || !bytes.Equal(data, r.data) {
					t.Errorf("%s: oid %s: LoadSerial(%s): %v", name, oid, r.tid, err)
				}
				data, tid, end, err := f.LoadBefore(cur.pos, r.tid)
				if i == 0 {
					if !errors.Is(err, ErrNoData) {
						t.Errorf("%s: oid %s: LoadBefore(first revision): %v", name, oid, err)
					}
					continue
				}
				p := rs[i-1]
				if end != r.tid || tid != p.tid {
					t.Errorf("%s: oid %s: LoadBefore(%s) = tid %s end %s, want %s %s", name, oid, r.tid, tid, end, p.tid, r.tid)
				}
				if p.data != nil && (err != nil || !bytes.Equal(data, p.data)) {
					t.Errorf("%s: oid %s: LoadBefore(%s) data: %v", name, oid, r.tid, err)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Errorf("%s: no object with several revisions", name)
		}
		f.Close()
	}
}
