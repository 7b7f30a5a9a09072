package fsformat_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

// Appending a transaction and reading it back.
func Example() {
	dir, _ := os.MkdirTemp("", "fsformat")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "Data.fs")

	a, err := fsformat.Create(path, nil)
	if err != nil {
		panic(err)
	}
	a.Now = func() time.Time { return time.Date(2024, 1, 2, 3, 4, 13, 250000000, time.UTC) }
	a.Begin(fsformat.TxnMeta{Description: []byte("initial database creation")})
	a.Store(0, []byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s."))
	a.Commit()
	a.Sync()
	a.Close()

	f, err := fsformat.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(txn.Tid, txn.Tid.Time(), string(txn.Description))
		for rec, err := range txn.Records() {
			if err != nil {
				panic(err)
			}
			mod, name := fsformat.ClassName(rec.Data)
			fmt.Println(rec.Oid, rec.Pos, len(rec.Data), string(mod)+"."+string(name))
		}
	}
	// Output:
	// 03f5945838888888 2024-01-02 03:04:13.250000 initial database creation
	// 0000000000000000 52 64 persistent.mapping.PersistentMapping
}
