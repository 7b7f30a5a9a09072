package fsformat

import (
	"os"
	"path/filepath"
	"testing"
)

// benchPath is $ZODBCTL_BENCH_FS (e.g. from bench/gendata) or basic.fs.
func benchPath() string {
	if p := os.Getenv("ZODBCTL_BENCH_FS"); p != "" {
		return p
	}
	return filepath.Join(fixtures, "basic.fs")
}

// BenchmarkTransactions iterates every transaction and record, resolving
// class names: the loop fsdump runs. It must not allocate per record.
func BenchmarkTransactions(b *testing.B) {
	path := benchPath()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for txn, err := range f.Transactions(IterOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			for rec, err := range txn.Records() {
				if err != nil {
					b.Fatal(err)
				}
				ClassName(rec.Data)
			}
		}
		f.Close()
	}
}

func BenchmarkVerify(b *testing.B) {
	path := benchPath()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(path, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend writes small transactions (3 records of 200 bytes).
func BenchmarkAppend(b *testing.B) {
	a, err := Create(filepath.Join(b.TempDir(), "Data.fs"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	data := make([]byte, 200)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.Begin(TxnMeta{})
		for k := 0; k < 3; k++ {
			a.Store(Oid(i%1000*3+k), data)
		}
		if _, err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
