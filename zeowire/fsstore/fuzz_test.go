package fsstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
)

// FuzzOpenAndRead opens arbitrary bytes as a Data.fs (read-only and
// writable) and reads everything it can: errors are fine, panics, hangs
// and huge allocations are not.
func FuzzOpenAndRead(f *testing.F) {
	for _, name := range []string{"fresh.fs", "dangling.fs", "basic.fs"} {
		if b, err := os.ReadFile(filepath.Join("../../testdata/fs", name)); err == nil {
			f.Add(b, uint16(0), byte(0))
			f.Add(b, uint16(len(b)/2), byte(0xff))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, at uint16, val byte) {
		if len(data) > 0 {
			data = append([]byte(nil), data...)
			data[int(at)%len(data)] ^= val
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "Data.fs")
		os.WriteFile(path, data, 0o644)
		for _, ro := range []bool{true, false} {
			st, err := Open(path, Options{ReadOnly: ro})
			if err != nil {
				continue
			}
			readAll(st)
			st.Close()
		}
	})
}

func readAll(st *Store) {
	ctx := context.Background()
	st.mu.RLock()
	var oids []zeowire.Oid
	for o := range st.idx.All() {
		oids = append(oids, zeowire.Oid(o))
	}
	st.mu.RUnlock()
	for _, o := range oids {
		rev, ok, err := st.LoadBefore(ctx, o, zeowire.Tid(1<<63-1))
		if err == nil && ok {
			st.LoadBefore(ctx, o, rev.Start)
			st.LoadSerial(ctx, o, rev.Start)
		}
		st.History(ctx, o, 10)
	}
	if it, err := st.Iterate(ctx, 0, 0); err == nil {
		for i := 0; i < 10000; i++ {
			if _, _, ok, err := it.Next(); !ok || err != nil {
				break
			}
		}
		it.Close()
	}
	st.UndoLog(ctx, 0, 20, nil)
	st.Recent(ctx, 10)
	if len(oids) > 0 {
		st.RecordIterNext(ctx, 0, true)
	}
}
