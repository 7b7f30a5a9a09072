package commands

import (
	"io"
	"os"
	"testing"
)

// benchFile is the Data.fs the benchmarks read: $ZODBCTL_BENCH_FS (e.g. made
// by bench/gendata) or the basic fixture.
func benchFile(b *testing.B) string {
	if p := os.Getenv("ZODBCTL_BENCH_FS"); p != "" {
		return p
	}
	return "../testdata/fs/basic.fs"
}

func benchCommand(b *testing.B, args ...string) {
	path := benchFile(b)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if code := Run(append(append([]string{"zodbctl"}, args...), path), io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

func BenchmarkFsdump(b *testing.B) { benchCommand(b, "fsdump") }
func BenchmarkVerify(b *testing.B) { benchCommand(b, "verify") }
func BenchmarkFstail(b *testing.B) { benchCommand(b, "fstail") }
