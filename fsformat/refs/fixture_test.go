package refs

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// record is one data record found by the minimal walk below (the tests do
// not depend on the fsformat package).
type record struct {
	txn, idx int // transaction number and record index in it
	pos      int64
	oid      uint64
	data     []byte // nil for backpointers and deletions
}

// walkRecords reads the data records of a well-formed FileStorage file.
func walkRecords(t testing.TB, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	pos := int64(4)
	for txn := 0; pos+23 <= int64(len(b)); txn++ {
		tlen := int64(binary.BigEndian.Uint64(b[pos+8:]))
		ulen := int64(binary.BigEndian.Uint16(b[pos+17:]))
		dlen := int64(binary.BigEndian.Uint16(b[pos+19:]))
		elen := int64(binary.BigEndian.Uint16(b[pos+21:]))
		end := pos + tlen
		if end+8 > int64(len(b)) || tlen < 23 {
			break
		}
		d := pos + 23 + ulen + dlen + elen
		for i := 0; d < end; i++ {
			oid := binary.BigEndian.Uint64(b[d:])
			plen := int64(binary.BigEndian.Uint64(b[d+34:]))
			r := record{txn: txn, idx: i, pos: d, oid: oid}
			if plen > 0 {
				r.data = b[d+42 : d+42+plen]
				d += 42 + plen
			} else {
				d += 42 + 8
			}
			recs = append(recs, r)
		}
		pos = end + 8
	}
	return recs
}

// fixtureFiles lists every FileStorage fixture that fsdump reads without
// errors (the damaged ones are left out).
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.fs", "*/*.fs", "*/*/*.fs"} {
		m, _ := filepath.Glob(filepath.Join("../../testdata/fs", pat))
		for _, f := range m {
			if filepath.Base(filepath.Dir(f)) != "damaged" {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no fixtures found")
	}
	return files
}
