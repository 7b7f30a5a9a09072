package refs

import (
	"testing"
)

// fixtureRecords returns the record payloads of basic.fs and multidb/Data1.fs.
func fixtureRecords(t testing.TB) [][]byte {
	var out [][]byte
	for _, f := range []string{"../../testdata/fs/basic.fs", "../../testdata/fs/multidb/Data1.fs"} {
		for _, r := range walkRecords(t, f) {
			if r.data != nil {
				out = append(out, r.data)
			}
		}
	}
	return out
}

// BenchmarkScanRecord scans one typical record: a fixturemodel.Person with
// its friends list (several references).
func BenchmarkScanRecord(b *testing.B) {
	var data []byte
	var s Scanner
	for _, r := range fixtureRecords(b) {
		if m, n := s.Class(r); string(m)+"."+string(n) == "fixturemodel.Person" {
			if refs, _ := s.Scan(r, nil); len(refs) >= 1 {
				data = r
				break
			}
		}
	}
	if data == nil {
		b.Fatal("no Person record with references")
	}
	refs := make([]Ref, 0, 64)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if refs, err = s.Scan(data, refs[:0]); err != nil {
			b.Fatal(err)
		}
		s.Class(data)
	}
}

// BenchmarkScanAll scans every record of the fixtures in turn, which covers
// BTree buckets, mappings and cross-database references.
func BenchmarkScanAll(b *testing.B) {
	recs := fixtureRecords(b)
	var total int64
	for _, r := range recs {
		total += int64(len(r))
	}
	var s Scanner
	refs := make([]Ref, 0, 256)
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			refs, _ = s.Scan(r, refs[:0])
			s.Class(r)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	recs := fixtureRecords(t)
	var s Scanner
	refs := make([]Ref, 0, 256)
	for _, r := range recs { // warm up the Scanner's buffers
		refs, _ = s.Scan(r, refs[:0])
	}
	allocs := testing.AllocsPerRun(10, func() {
		for _, r := range recs {
			refs, _ = s.Scan(r, refs[:0])
			s.Class(r)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per pass over %d records, want 0", allocs, len(recs))
	}
}

// FuzzScanner feeds arbitrary bytes to the scanner: it must never panic,
// and every reference it reports must point at a PERSID opcode.
func FuzzScanner(f *testing.F) {
	for _, r := range fixtureRecords(f) {
		f.Add(r)
	}
	f.Add([]byte("(cmod\nK\nq\x01Nt."))
	f.Add([]byte("\x80\x03]q\x00(X\x01\x00\x00\x00mq\x01X\x01\x00\x00\x002C\x08\x00\x00\x00\x00\x00\x00\x00\x01N\x87eQ."))
	var s Scanner
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := s.Scan(data, nil)
		for _, r := range refs {
			if r.Offset < 0 || r.Offset >= len(data) || (data[r.Offset] != 'Q' && data[r.Offset] != 'P') {
				t.Fatalf("ref at offset %d is not at a PERSID opcode", r.Offset)
			}
		}
		if e, ok := err.(*Error); ok && (e.Offset < 0 || e.Offset > len(data)) {
			t.Fatalf("error offset %d outside the data", e.Offset)
		}
		s.Class(data)
		s.AnalyzeType(data, nil)
	})
}
