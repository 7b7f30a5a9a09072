package fsformat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecordParser feeds arbitrary bytes, seeded with every fixture (the
// damaged ones included), to every reader in the package: forward and
// backward iteration, backpointer loading, Verify, RawScan, ScanIndex and
// ClassName. None may panic, loop, or allocate more than the file holds.
func FuzzRecordParser(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(fixtures, "*.fs"))
	more, _ := filepath.Glob(filepath.Join(fixtures, "*", "*.fs"))
	for _, p := range append(seeds, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("FS30"))
	f.Add([]byte("FS3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "Data.fs"
		ra := bytes.NewReader(data)
		size := int64(len(data))
		if fl, err := NewFile(ra, size, path); err == nil {
			prevEnd := int64(FileHeaderLen)
			for txn, err := range fl.Transactions(IterOptions{Warn: func(string) {}}) {
				if err != nil {
					break
				}
				if txn.Pos < prevEnd || txn.Next() > size || txn.DataPos() > txn.End() {
					t.Fatalf("transaction at %d (next %d) outside [%d, %d]", txn.Pos, txn.Next(), prevEnd, size)
				}
				prevEnd = txn.Next()
				for rec, err := range txn.Records() {
					if err != nil {
						break
					}
					if rec.Pos < txn.DataPos() || rec.Pos+rec.RecordLen() > txn.End() || int64(len(rec.Data)) != max(rec.DataLen, 0)*boolInt(rec.DataLen > 0) {
						t.Fatalf("record at %d outside its transaction [%d, %d]", rec.Pos, txn.DataPos(), txn.End())
					}
					ClassName(rec.Data)
					if rec.DataLen == 0 {
						_, _, _, err := fl.LoadBack(rec.Oid, rec.Back)
						_ = err
						fl.LoadRecord(rec.Pos)
						fl.LoadBefore(rec.Pos, rec.Tid)
						fl.LoadSerial(rec.Pos, rec.Tid)
					}
				}
			}
			for txn, err := range fl.TransactionsBackward(0) {
				if err != nil {
					break
				}
				for _, err := range txn.Records() {
					if err != nil {
						break
					}
				}
			}
			fl.Close()
		}
		VerifyReader(ra, size, path, VerifyOptions{Deep: true})
		if fl, err := NewFile(ra, size, path); err == nil {
			for txn, err := range fl.Transactions(IterOptions{DataLimit: 16}) {
				if err != nil {
					break
				}
				for rec, err := range txn.Records() {
					if err != nil {
						break
					}
					if len(rec.Data) > 16 {
						t.Fatalf("DataLimit ignored: %d bytes", len(rec.Data))
					}
					if rec.DataLen == 0 {
						fl.LoadBackPrefix(rec.Oid, rec.Back, 16)
					}
				}
			}
		}
		err := VerifyReader(ra, size, path, VerifyOptions{})
		var ve *VerifyError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("verify: unexpected error type %T: %v", err, err)
		}
		RawScan(ra, size, path, RawVisitor{})
		ScanIndexReader(ra, size, path, MapIndex{}, nil)
		ClassName(data)
	})
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
